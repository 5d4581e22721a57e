-- Budgets that reset (docs/gateway.md, Budgets): an amount a key may spend per period. `budget`
-- is in nano-units, NULL for none; `budget_period` is day, week or month (calendar, in the
-- `gateway.budget_time_zone` setting's offset) or 24h, 7d or 30d (rolling from `budget_anchor`,
-- when the budget was set). `budget_window` is the start (unix ms) of the window `budget_spent`
-- counts: a hold in a later window starts the count again, so nothing has to reset the rows.
ALTER TABLE api_keys ADD COLUMN budget BIGINT CHECK (budget IS NULL OR budget >= 0);
ALTER TABLE api_keys ADD COLUMN budget_period TEXT CHECK (budget_period IS NULL OR budget_period IN ('day', 'week', 'month', '24h', '7d', '30d'));
ALTER TABLE api_keys ADD COLUMN budget_anchor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN budget_window BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN budget_spent BIGINT NOT NULL DEFAULT 0 CHECK (budget_spent >= 0);
