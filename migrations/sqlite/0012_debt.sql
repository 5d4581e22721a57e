-- Debt (docs/gateway.md, Billing): a request whose cost exceeds its hold and the whole balance
-- leaves a shortfall the balance (CHECK balance >= 0) cannot carry. It is kept in `users.debt`,
-- recorded by a `debt` ledger row of amount 0 (the ledger still sums to the balance), and paid
-- by the next credit with a `debt_paid` row that takes it from the balance. While it is above
-- zero no lease can be taken on the balance, so the gateway refuses the user's requests.
ALTER TABLE users ADD COLUMN debt BIGINT NOT NULL DEFAULT 0 CHECK (debt >= 0);
-- SQLite cannot change a CHECK constraint in place: the ledger is rebuilt with the two new kinds
-- (nothing references it; ids are kept, so keyset pages and idempotency keys stay valid).
CREATE TABLE ledger_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    kind            TEXT NOT NULL CHECK (kind IN ('topup', 'redemption', 'invitation_reward', 'welcome_credit',
                                                   'hold', 'settle', 'refund', 'adjustment', 'debt', 'debt_paid')),
    amount          BIGINT NOT NULL,
    balance_after   BIGINT NOT NULL CHECK (balance_after >= 0),
    reference       TEXT,
    note            TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    CONSTRAINT ledger_idempotency_key_key UNIQUE (idempotency_key)
);
INSERT INTO ledger_new (id, user_id, kind, amount, balance_after, reference, note, idempotency_key, created_at)
SELECT id, user_id, kind, amount, balance_after, reference, note, idempotency_key, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_user_created_idx ON ledger (user_id, created_at);
CREATE INDEX ledger_user_id_idx ON ledger (user_id, id);
-- `billing.cap_output_by_balance`, per group (0/1): a request without an output cap gets the
-- largest one the user's available balance can pay for.
ALTER TABLE groups ADD COLUMN cap_output_by_balance BIGINT NOT NULL DEFAULT 0 CHECK (cap_output_by_balance IN (0, 1));
