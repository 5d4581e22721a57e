-- Stripe top-ups (docs/payments.md). A payment row is written before its Checkout Session exists
-- (the session carries the row's id as client_reference_id), so the session id starts empty.
-- SQLite cannot drop a NOT NULL constraint in place: the table is rebuilt (nothing references it).
CREATE TABLE payments_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    provider            TEXT NOT NULL DEFAULT 'stripe',
    provider_session_id TEXT,
    provider_payment_id TEXT,
    -- credit to the balance, in nano-units of the site currency
    credit_amount       BIGINT NOT NULL CHECK (credit_amount > 0),
    -- what the customer is charged, in the payment currency's minor unit (cents)
    charge_amount       BIGINT NOT NULL CHECK (charge_amount > 0),
    charge_currency     TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'failed', 'expired', 'refunded', 'partially_refunded')),
    refunded_amount     BIGINT NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    paid_at             BIGINT,
    -- where to send the buyer back to pay a pending top-up, and why a payment failed
    checkout_url        TEXT,
    failure_reason      TEXT,
    -- credit a refund could not take back because it was already spent (the account is flagged)
    unrecovered_credit  BIGINT NOT NULL DEFAULT 0 CHECK (unrecovered_credit >= 0),
    CONSTRAINT payments_provider_session_key UNIQUE (provider, provider_session_id)
);
INSERT INTO payments_new (id, user_id, provider, provider_session_id, provider_payment_id, credit_amount,
    charge_amount, charge_currency, status, refunded_amount, created_at, updated_at, paid_at)
SELECT id, user_id, provider, provider_session_id, provider_payment_id, credit_amount,
    charge_amount, charge_currency, status, refunded_amount, created_at, updated_at, paid_at FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
CREATE INDEX payments_user_idx ON payments (user_id, created_at);
CREATE INDEX payments_provider_payment_idx ON payments (provider, provider_payment_id);
CREATE INDEX payments_created_idx ON payments (created_at);
-- Why an operator should look at the account (a refund of spent credit), or NULL.
ALTER TABLE users ADD COLUMN flag TEXT;
