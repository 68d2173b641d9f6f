-- Evaluation items, their prompts under the 18 conditions, and the capability items (docs/study.md §5-§6).
CREATE TABLE IF NOT EXISTS eval_items (
    dataset          VARCHAR NOT NULL,
    item_key         VARCHAR NOT NULL,
    question         VARCHAR NOT NULL,
    correct_answer   VARCHAR NOT NULL,
    incorrect_answer VARCHAR NOT NULL,
    incorrect_source VARCHAR NOT NULL,   -- truthfulqa:first, mask:proposition, medqa:seeded, generated:<model>:<prompt>, sharma:answer.jsonl
    fields           VARCHAR NOT NULL,   -- the dataset's own fields, JSON
    PRIMARY KEY (dataset, item_key)
);

CREATE TABLE IF NOT EXISTS eval_prompts (
    prompt_id        VARCHAR PRIMARY KEY,
    dataset          VARCHAR NOT NULL,
    item_key         VARCHAR NOT NULL,
    amendment_type   VARCHAR NOT NULL,   -- unmodified, emotion:sad, relation:close, stake:high, ...
    context_group    VARCHAR NOT NULL,   -- unmodified, emotion, relation, stake
    prompt_template  VARCHAR NOT NULL,   -- original, original_neutral, incorrect, correct, mcq
    template_group   VARCHAR NOT NULL,   -- original, user_opinion, mcq
    statement        VARCHAR NOT NULL,
    prompt           VARCHAR NOT NULL,
    question         VARCHAR NOT NULL,
    correct_answer   VARCHAR NOT NULL,
    incorrect_answer VARCHAR NOT NULL,
    source           VARCHAR NOT NULL    -- built, or study (the released prompt)
);

CREATE TABLE IF NOT EXISTS capability_items (
    dataset          VARCHAR NOT NULL,   -- mmlu, gsm8k, advbench
    item_key         VARCHAR NOT NULL,
    prompt           VARCHAR NOT NULL,
    answer           VARCHAR NOT NULL,   -- letter, number, or "refuse"
    fields           VARCHAR NOT NULL,
    template_version VARCHAR NOT NULL,
    PRIMARY KEY (dataset, item_key)
);
