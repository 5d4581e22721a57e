-- Exactly-once settlement: each gateway request's settlement carries a unique key, written with
-- its log row (and its ledger rows' idempotency keys) in the transaction that charges it, so a
-- retry after a COMMIT whose acknowledgement was lost finds it and charges nothing twice.
ALTER TABLE request_logs ADD COLUMN settle_key TEXT;
CREATE UNIQUE INDEX request_logs_settle_key_key ON request_logs (settle_key);
