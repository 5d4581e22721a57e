-- Balance leases: a gateway process reserves a slice of a user's balance and admits requests
-- against it in memory, so a request's hold needs no database round trip. `users.leased` is the
-- sum of a user's lease rows; debits by anyone else may only take `balance - leased`.
ALTER TABLE users ADD COLUMN leased BIGINT NOT NULL DEFAULT 0 CHECK (leased >= 0 AND leased <= balance);

CREATE TABLE balance_leases (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    holder     TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, holder)
);
CREATE INDEX balance_leases_expires_at ON balance_leases (expires_at);
