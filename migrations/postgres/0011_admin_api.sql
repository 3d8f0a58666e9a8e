-- The admin API's own credentials and its idempotency records (see the SQLite migration).
CREATE TABLE admin_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

CREATE TABLE admin_idempotency (
    token_id     TEXT COLLATE "C" NOT NULL,
    idem_key     TEXT COLLATE "C" NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    response     BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (token_id, idem_key)
);
CREATE INDEX admin_idempotency_created ON admin_idempotency (created_at);
