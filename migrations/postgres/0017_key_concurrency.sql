-- A key's own cap on requests in flight (docs/gateway.md, Admission), instead of the site's
-- `BURNCLOUD_MAX_CONCURRENT_PER_KEY`; still within the account's cap. NULL: the site's.
ALTER TABLE api_keys ADD COLUMN max_concurrent BIGINT CHECK (max_concurrent IS NULL OR max_concurrent > 0);
