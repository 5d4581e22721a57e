-- A Stripe dispute (chargeback) of a paid top-up (docs/payments.md): Stripe allows one per charge.
-- `dispute_status` is open, won or lost; `disputed_amount` is in minor units of the charge;
-- `dispute_taken` is the credit taken back when it opened (given back if it is won), and
-- `dispute_unrecovered` what could not be taken back because it was spent (also counted in
-- `unrecovered_credit` while the dispute is not won).
ALTER TABLE payments ADD COLUMN dispute_id TEXT;
ALTER TABLE payments ADD COLUMN dispute_status TEXT;
ALTER TABLE payments ADD COLUMN disputed_amount BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN dispute_taken BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN dispute_unrecovered BIGINT NOT NULL DEFAULT 0;
