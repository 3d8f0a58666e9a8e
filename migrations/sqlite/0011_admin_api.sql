-- The admin API's own credentials and its idempotency records.
-- admin_tokens: the API-key format with a role; only the secret's keyed hash is kept.
CREATE TABLE admin_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

-- One row per (token, Idempotency-Key) of a create: the request's hash and, once answered,
-- the answer (sealed: it may hold a secret shown once). Kept in the store so a retry reaching
-- another replica gets the same answer.
CREATE TABLE admin_idempotency (
    token_id     TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (token_id, idem_key)
);
CREATE INDEX admin_idempotency_created ON admin_idempotency (created_at);
