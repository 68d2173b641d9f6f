-- The dry-run cost of the configured study (asset cost_estimate), replaced whole on each run.
CREATE TABLE IF NOT EXISTS cost_estimate (
    stage         VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    calls         BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    usd           DOUBLE NOT NULL
);
