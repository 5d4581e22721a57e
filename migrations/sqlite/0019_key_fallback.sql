-- A key that opts out of its group's fallback models (docs/gateway.md, Fallback models): 1 means
-- a request whose model's channels all fail gets the error, not another model's answer.
ALTER TABLE api_keys ADD COLUMN no_fallback BIGINT NOT NULL DEFAULT 0 CHECK (no_fallback IN (0, 1));
