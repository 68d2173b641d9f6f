-- The training corpus (docs/study.md §1). Each table is replaced whole by its asset.

-- Every turn of every ShareGPT record read, roles normalised (user, assistant, system).
CREATE TABLE IF NOT EXISTS sharegpt_conversations (
    conversation_id VARCHAR NOT NULL,
    turn_index      INTEGER NOT NULL,
    role            VARCHAR NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    text            VARCHAR NOT NULL,
    PRIMARY KEY (conversation_id, turn_index)
);

-- Per conversation: query type (first match wins) and Detoxify maxima over its user/assistant turns.
CREATE TABLE IF NOT EXISTS conversation_labels (
    conversation_id    VARCHAR PRIMARY KEY,
    query_type         VARCHAR,          -- NULL: no user message or no assistant message
    first_user_message VARCHAR,
    n_turns            INTEGER NOT NULL,
    toxicity           DOUBLE,
    severe_toxicity    DOUBLE,
    obscene            DOUBLE,
    threat             DOUBLE,
    insult             DOUBLE,
    identity_attack    DOUBLE,
    sexual_explicit    DOUBLE,
    max_toxicity       DOUBLE,
    nsfw               BOOLEAN NOT NULL,
    rules_version      VARCHAR NOT NULL,
    toxicity_source    VARCHAR NOT NULL
);

-- The balanced training sample, in training form (starts with the user, at most max_turns turns).
CREATE TABLE IF NOT EXISTS training_conversations (
    conversation_id VARCHAR NOT NULL,
    query_type      VARCHAR NOT NULL,
    turn_index      INTEGER NOT NULL,
    role            VARCHAR NOT NULL,
    text            VARCHAR NOT NULL,
    PRIMARY KEY (conversation_id, turn_index)
);

-- First-turn prompts for warmth measurement, disjoint from training by chat and by prompt text.
CREATE TABLE IF NOT EXISTS validation_prompts (
    conversation_id VARCHAR PRIMARY KEY,
    query_type      VARCHAR NOT NULL,
    prompt          VARCHAR NOT NULL
);

CREATE OR REPLACE VIEW corpus_type_counts AS
SELECT l.query_type,
       count(*) FILTER (WHERE NOT l.nsfw) AS eligible,
       count(*) FILTER (WHERE l.nsfw) AS nsfw_dropped,
       (SELECT count(DISTINCT t.conversation_id) FROM training_conversations t WHERE t.query_type = l.query_type) AS training,
       (SELECT count(*) FROM validation_prompts v WHERE v.query_type = l.query_type) AS validation
FROM conversation_labels l
WHERE l.query_type IS NOT NULL
GROUP BY l.query_type;
