-- The budget's soft threshold (`notify.budget_warning_percent`): the budget window (its start,
-- unix ms) whose warning email was sent, so each key's owner is told at most once per period.
ALTER TABLE api_keys ADD COLUMN budget_warned_window BIGINT NOT NULL DEFAULT 0;
