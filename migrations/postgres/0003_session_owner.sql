-- The user a console session belongs to (copied from its data at save), so a password change,
-- a reset or "sign out everywhere else" can end a user's other sessions.
ALTER TABLE sessions ADD COLUMN user_id BIGINT;
CREATE INDEX sessions_user_idx ON sessions (user_id);
