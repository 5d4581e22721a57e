-- When the user was last sent the low-balance email (NULL: not since their balance was last at or
-- above the threshold), so the email goes out once per fall below it.
ALTER TABLE users ADD COLUMN low_balance_notified_at BIGINT;
