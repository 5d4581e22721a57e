-- BurnCloud schema, SQLite dialect. Kept column-for-column in step with migrations/postgres.
-- Conventions: money is BIGINT in nano-units (1e-9) of the site currency; timestamps are BIGINT
-- unix milliseconds; flags are BIGINT 0/1; JSON is TEXT. These decode the same way through sqlx's
-- Any driver on both backends.

CREATE TABLE groups (
    name           TEXT PRIMARY KEY,
    description    TEXT NOT NULL DEFAULT '',
    -- price multiplier in parts per million: 1000000 = 1.0x
    multiplier_ppm BIGINT NOT NULL DEFAULT 1000000 CHECK (multiplier_ppm >= 0),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE users (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    email             TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    display_name      TEXT NOT NULL DEFAULT '',
    role              TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('root', 'admin', 'reseller', 'user')),
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    group_name        TEXT NOT NULL DEFAULT 'default' REFERENCES groups (name) ON UPDATE CASCADE,
    balance           BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    invite_code       TEXT NOT NULL,
    invited_by        BIGINT REFERENCES users (id) ON DELETE SET NULL,
    email_verified_at BIGINT,
    last_login_at     BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_invite_code_key UNIQUE (invite_code)
);
CREATE INDEX users_invited_by_idx ON users (invited_by);

CREATE TABLE api_keys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT NOT NULL DEFAULT '',
    key_hash       TEXT NOT NULL,
    key_prefix     TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    spend_limit    BIGINT CHECK (spend_limit IS NULL OR spend_limit >= 0),
    spent          BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
    expires_at     BIGINT,
    allowed_models TEXT,
    allowed_ips    TEXT,
    rate_limit_rpm BIGINT CHECK (rate_limit_rpm IS NULL OR rate_limit_rpm > 0),
    last_used_at   BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_within_limit CHECK (spend_limit IS NULL OR spent <= spend_limit)
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE access_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL,
    token_prefix TEXT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    created_at   BIGINT NOT NULL,
    CONSTRAINT access_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX access_tokens_user_idx ON access_tokens (user_id);

CREATE TABLE channels (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    base_url        TEXT NOT NULL DEFAULT '',
    -- AES-256-GCM ciphertext (nonce || ciphertext) of the JSON list of upstream keys
    keys_encrypted  BLOB NOT NULL,
    models          TEXT NOT NULL DEFAULT '[]',
    model_mapping   TEXT NOT NULL DEFAULT '{}',
    groups          TEXT NOT NULL DEFAULT '["default"]',
    priority        BIGINT NOT NULL DEFAULT 0,
    weight          BIGINT NOT NULL DEFAULT 1 CHECK (weight >= 0),
    status          TEXT NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'manually_disabled', 'auto_disabled')),
    disabled_reason TEXT,
    disabled_at     BIGINT,
    config          TEXT NOT NULL DEFAULT '{}',
    test_latency_ms BIGINT,
    tested_at       BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE abilities (
    group_name TEXT NOT NULL,
    model      TEXT NOT NULL,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    priority   BIGINT NOT NULL DEFAULT 0,
    weight     BIGINT NOT NULL DEFAULT 1,
    enabled    BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    PRIMARY KEY (group_name, model, channel_id)
);
CREATE INDEX abilities_channel_idx ON abilities (channel_id);

-- Prices are nano-units of the site currency per 1M tokens (or per request).
CREATE TABLE model_prices (
    model                TEXT PRIMARY KEY,
    input_per_mtok       BIGINT CHECK (input_per_mtok >= 0),
    output_per_mtok      BIGINT CHECK (output_per_mtok >= 0),
    cached_input_per_mtok BIGINT CHECK (cached_input_per_mtok >= 0),
    cache_write_per_mtok BIGINT CHECK (cache_write_per_mtok >= 0),
    per_request          BIGINT CHECK (per_request >= 0),
    updated_at           BIGINT NOT NULL
);

CREATE TABLE group_model_prices (
    group_name           TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE ON UPDATE CASCADE,
    model                TEXT NOT NULL,
    input_per_mtok       BIGINT CHECK (input_per_mtok >= 0),
    output_per_mtok      BIGINT CHECK (output_per_mtok >= 0),
    cached_input_per_mtok BIGINT CHECK (cached_input_per_mtok >= 0),
    cache_write_per_mtok BIGINT CHECK (cache_write_per_mtok >= 0),
    per_request          BIGINT CHECK (per_request >= 0),
    updated_at           BIGINT NOT NULL,
    PRIMARY KEY (group_name, model)
);

CREATE TABLE ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    kind            TEXT NOT NULL CHECK (kind IN ('topup', 'redemption', 'invitation_reward', 'welcome_credit',
                                                   'hold', 'settle', 'refund', 'adjustment')),
    amount          BIGINT NOT NULL,
    balance_after   BIGINT NOT NULL CHECK (balance_after >= 0),
    reference       TEXT,
    note            TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    CONSTRAINT ledger_idempotency_key_key UNIQUE (idempotency_key)
);
CREATE INDEX ledger_user_created_idx ON ledger (user_id, created_at);

CREATE TABLE request_logs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    user_id            BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id         BIGINT REFERENCES api_keys (id) ON DELETE SET NULL,
    channel_id         BIGINT REFERENCES channels (id) ON DELETE SET NULL,
    endpoint           TEXT NOT NULL,
    requested_model    TEXT NOT NULL DEFAULT '',
    upstream_model     TEXT NOT NULL DEFAULT '',
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    cached_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens   BIGINT NOT NULL DEFAULT 0,
    cost               BIGINT NOT NULL DEFAULT 0,
    status_code        BIGINT NOT NULL,
    error_class        TEXT,
    latency_ms         BIGINT NOT NULL DEFAULT 0,
    ttfb_ms            BIGINT,
    is_stream          BIGINT NOT NULL DEFAULT 0 CHECK (is_stream IN (0, 1)),
    attempts           BIGINT NOT NULL DEFAULT 1,
    client_ip          TEXT
);
CREATE INDEX request_logs_user_created_idx ON request_logs (user_id, created_at);
CREATE INDEX request_logs_created_idx ON request_logs (created_at);
CREATE INDEX request_logs_request_id_idx ON request_logs (request_id);

CREATE TABLE redemption_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code        TEXT NOT NULL,
    batch_name  TEXT NOT NULL DEFAULT '',
    amount      BIGINT NOT NULL CHECK (amount > 0),
    status      TEXT NOT NULL DEFAULT 'unused' CHECK (status IN ('unused', 'used', 'disabled')),
    created_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    redeemed_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    redeemed_at BIGINT,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    CONSTRAINT redemption_codes_code_key UNIQUE (code)
);
CREATE INDEX redemption_codes_created_by_idx ON redemption_codes (created_by);

CREATE TABLE invitations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    inviter_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invitee_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code           TEXT NOT NULL,
    inviter_reward BIGINT NOT NULL DEFAULT 0 CHECK (inviter_reward >= 0),
    invitee_reward BIGINT NOT NULL DEFAULT 0 CHECK (invitee_reward >= 0),
    rewarded_at    BIGINT,
    created_at     BIGINT NOT NULL,
    CONSTRAINT invitations_invitee_key UNIQUE (invitee_id)
);
CREATE INDEX invitations_inviter_idx ON invitations (inviter_id);

CREATE TABLE payments (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    provider            TEXT NOT NULL DEFAULT 'stripe',
    provider_session_id TEXT NOT NULL,
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
    CONSTRAINT payments_provider_session_key UNIQUE (provider, provider_session_id)
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at);

CREATE TABLE webhook_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    new_email  TEXT,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    data        BLOB NOT NULL,
    expiry_date BIGINT NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry_date);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    BIGINT NOT NULL,
    actor_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'token', 'system')),
    action        TEXT NOT NULL,
    target_type   TEXT,
    target_id     TEXT,
    details       TEXT NOT NULL DEFAULT '{}',
    ip            TEXT
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at);

INSERT INTO groups (name, description, multiplier_ppm, created_at, updated_at)
VALUES ('default', 'Default group', 1000000, 0, 0);
