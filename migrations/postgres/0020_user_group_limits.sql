-- Budgets and rate limits on users and groups (docs/gateway.md, Budgets and Rate limits). A
-- group's values are the default each of its members gets (each member counts their own); a
-- user's own value, when set, replaces the group's. NULL: none set (a user then has the group's).
-- Amounts are nano-units; periods and anchors as on api_keys (0014).
ALTER TABLE groups ADD COLUMN budget BIGINT CHECK (budget IS NULL OR budget >= 0);
ALTER TABLE groups ADD COLUMN budget_period TEXT CHECK (budget_period IS NULL OR budget_period IN ('day', 'week', 'month', '24h', '7d', '30d'));
ALTER TABLE groups ADD COLUMN budget_anchor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN rate_limit_rpm BIGINT CHECK (rate_limit_rpm IS NULL OR rate_limit_rpm > 0);
ALTER TABLE groups ADD COLUMN rate_limit_rpd BIGINT CHECK (rate_limit_rpd IS NULL OR rate_limit_rpd > 0);
ALTER TABLE groups ADD COLUMN rate_limit_tpm BIGINT CHECK (rate_limit_tpm IS NULL OR rate_limit_tpm > 0);
ALTER TABLE groups ADD COLUMN max_concurrent BIGINT CHECK (max_concurrent IS NULL OR max_concurrent > 0);
-- Per model within the group, for each member: a JSON object
-- {"<model>": {"rpm": n, "rpd": n, "tpm": n, "concurrency": n}} (any of the four), or NULL.
ALTER TABLE groups ADD COLUMN model_limits TEXT;
ALTER TABLE users ADD COLUMN budget BIGINT CHECK (budget IS NULL OR budget >= 0);
ALTER TABLE users ADD COLUMN budget_period TEXT CHECK (budget_period IS NULL OR budget_period IN ('day', 'week', 'month', '24h', '7d', '30d'));
ALTER TABLE users ADD COLUMN budget_anchor BIGINT NOT NULL DEFAULT 0;
-- The user's count, whichever budget applies (their own or their group's): the window (its
-- start, unix ms) `budget_spent` counts, and the window whose soft-threshold email was sent.
ALTER TABLE users ADD COLUMN budget_window BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN budget_spent BIGINT NOT NULL DEFAULT 0 CHECK (budget_spent >= 0);
ALTER TABLE users ADD COLUMN budget_warned_window BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN rate_limit_rpm BIGINT CHECK (rate_limit_rpm IS NULL OR rate_limit_rpm > 0);
ALTER TABLE users ADD COLUMN rate_limit_rpd BIGINT CHECK (rate_limit_rpd IS NULL OR rate_limit_rpd > 0);
ALTER TABLE users ADD COLUMN rate_limit_tpm BIGINT CHECK (rate_limit_tpm IS NULL OR rate_limit_tpm > 0);
ALTER TABLE users ADD COLUMN max_concurrent BIGINT CHECK (max_concurrent IS NULL OR max_concurrent > 0);
