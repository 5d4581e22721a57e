-- Per-key state of a channel's upstream keys (docs/gateway.md, Multi-key channels). A key is
-- named by its fingerprint (the first 16 hex digits of SHA-256 of the key), never by the key;
-- a key without a row is active. The keys themselves stay in `channels.keys_encrypted`.
CREATE TABLE channel_keys (
    channel_id    BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    fingerprint   TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'auto_disabled', 'manually_disabled')),
    reason        TEXT,
    changed_at    BIGINT NOT NULL,
    last_error    TEXT,
    last_error_at BIGINT,
    tested_at     BIGINT,
    test_latency_ms BIGINT,
    PRIMARY KEY (channel_id, fingerprint)
);
