-- Debt (docs/gateway.md, Billing): a request whose cost exceeds its hold and the whole balance
-- leaves a shortfall the balance (CHECK balance >= 0) cannot carry. It is kept in `users.debt`,
-- recorded by a `debt` ledger row of amount 0 (the ledger still sums to the balance), and paid
-- by the next credit with a `debt_paid` row that takes it from the balance. While it is above
-- zero no lease can be taken on the balance, so the gateway refuses the user's requests.
ALTER TABLE users ADD COLUMN debt BIGINT NOT NULL DEFAULT 0 CHECK (debt >= 0);
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN ('topup', 'redemption', 'invitation_reward',
    'welcome_credit', 'hold', 'settle', 'refund', 'adjustment', 'debt', 'debt_paid'));
-- `billing.cap_output_by_balance`, per group (0/1): a request without an output cap gets the
-- largest one the user's available balance can pay for.
ALTER TABLE groups ADD COLUMN cap_output_by_balance BIGINT NOT NULL DEFAULT 0 CHECK (cap_output_by_balance IN (0, 1));
