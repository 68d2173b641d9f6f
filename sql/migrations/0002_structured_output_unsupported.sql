-- Endpoints (and models on them) that rejected a request's response_format (structured output): found once,
-- by the llm resource's first structured call there, with the server's error. Later runs read this table
-- and send those requests in their free-text form (no response_format, the key they had before), parsed
-- as free text. Delete a row to try the structured form again (e.g. after upgrading the server).
CREATE TABLE IF NOT EXISTS llm_structured_unsupported (
    endpoint    VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    detected_on DATE NOT NULL,
    error       VARCHAR NOT NULL,
    PRIMARY KEY (endpoint, model)
);
