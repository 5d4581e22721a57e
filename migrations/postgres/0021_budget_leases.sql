-- Budget leases: a gateway process reserves a slice of a key's spend limit and budget, or of a
-- user's budget, and admits requests against it in memory, so a request's hold needs no database
-- round trip while the budget has room. The reservation is counted in the owner's `spent` /
-- `budget_spent` when taken (everybody else's conditional reservations see it); a row holds what
-- is reserved and not yet charged, so what a process that died left reserved returns when its
-- row expires. `owner` is 'key' (`api_keys.id`) or 'user' (`users.id`).
CREATE TABLE budget_leases (
    owner         TEXT NOT NULL,
    owner_id      BIGINT NOT NULL,
    budget_window BIGINT NOT NULL,
    holder        TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount >= 0),
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (owner, owner_id, budget_window, holder)
);
CREATE INDEX budget_leases_expires_at ON budget_leases (expires_at);
CREATE INDEX budget_leases_holder ON budget_leases (holder);
