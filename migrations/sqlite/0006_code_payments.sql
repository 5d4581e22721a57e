-- Redemption codes a reseller bought: `paid` is what their creator was charged for the code (0
-- for an operator's codes), so voiding an unused code refunds exactly that, to `created_by`.
ALTER TABLE redemption_codes ADD COLUMN paid BIGINT NOT NULL DEFAULT 0 CHECK (paid >= 0);
CREATE INDEX redemption_codes_batch_idx ON redemption_codes (batch_name);
