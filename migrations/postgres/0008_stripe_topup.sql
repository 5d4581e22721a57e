-- Stripe top-ups (docs/payments.md). A payment row is written before its Checkout Session exists
-- (the session carries the row's id as client_reference_id), so the session id starts empty.
ALTER TABLE payments ALTER COLUMN provider_session_id DROP NOT NULL;
-- Where to send the buyer back to pay a pending top-up, and why a payment failed.
ALTER TABLE payments ADD COLUMN checkout_url TEXT;
ALTER TABLE payments ADD COLUMN failure_reason TEXT;
-- Credit a refund could not take back because it was already spent (the account is flagged).
ALTER TABLE payments ADD COLUMN unrecovered_credit BIGINT NOT NULL DEFAULT 0 CHECK (unrecovered_credit >= 0);
CREATE INDEX payments_provider_payment_idx ON payments (provider, provider_payment_id);
CREATE INDEX payments_created_idx ON payments (created_at);
-- Why an operator should look at the account (a refund of spent credit), or NULL.
ALTER TABLE users ADD COLUMN flag TEXT;
