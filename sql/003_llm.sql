-- The call cache: one row per distinct chat request (key = sha256 of the full request), answered.
-- Errors are never written here, so a re-run sends exactly the calls that have no answer yet.
CREATE TABLE IF NOT EXISTS llm_calls (
    request_key       VARCHAR PRIMARY KEY,
    provider          VARCHAR NOT NULL,
    endpoint          VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    request_json      VARCHAR NOT NULL,
    response_text     VARCHAR NOT NULL,
    finish_reason     VARCHAR NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s         DOUBLE NOT NULL,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- OpenAI fine-tuning jobs, one per (base model, data, epochs, lr multiplier, seed) fingerprint.
CREATE TABLE IF NOT EXISTS openai_finetune_jobs (
    fingerprint      VARCHAR PRIMARY KEY,
    model            VARCHAR NOT NULL,
    style            VARCHAR NOT NULL,
    epochs           DOUBLE NOT NULL,
    job_id           VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,
    fine_tuned_model VARCHAR NOT NULL,
    trained_tokens   BIGINT NOT NULL,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Batch API submissions, one per set of request keys: a run killed while waiting polls the same batch.
CREATE TABLE IF NOT EXISTS llm_batches (
    batch_key  VARCHAR PRIMARY KEY,
    batch_id   VARCHAR NOT NULL,
    endpoint   VARCHAR NOT NULL,
    status     VARCHAR NOT NULL,
    n_requests INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
