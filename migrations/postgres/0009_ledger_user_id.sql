-- Keyset paging through one user's ledger by id (`GET /api/admin/users/{id}/ledger`): without it
-- a page scans either every row of the user (by created_at) or the whole table (by id).
CREATE INDEX ledger_user_id_idx ON ledger (user_id, id);
