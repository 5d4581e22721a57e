-- Key rate limits beside requests per minute (docs/gateway.md, Rate limits): requests per day and
-- tokens per minute (reserved from a request's estimate at admission, trued up at settlement).
-- NULL: no limit.
ALTER TABLE api_keys ADD COLUMN rate_limit_rpd BIGINT CHECK (rate_limit_rpd IS NULL OR rate_limit_rpd > 0);
ALTER TABLE api_keys ADD COLUMN rate_limit_tpm BIGINT CHECK (rate_limit_tpm IS NULL OR rate_limit_tpm > 0);
