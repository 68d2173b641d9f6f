-- llm_calls.response_format: the JSON of the request's response_format (NULL when the request had none).
-- Only the column for now; the llm resource does not write it yet.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS response_format VARCHAR;
