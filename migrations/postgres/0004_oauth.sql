-- OAuth 2.1 authorization server (see migrations/sqlite/0004_oauth.sql for each table's role).
ALTER TABLE clients ADD COLUMN oauth TEXT;

CREATE TABLE client_secrets (
    id          TEXT COLLATE "C" PRIMARY KEY,
    client      TEXT COLLATE "C" NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX client_secrets_client ON client_secrets (client);

CREATE TABLE signing_keys (
    kid            TEXT COLLATE "C" PRIMARY KEY,
    alg            TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    active_at      BIGINT NOT NULL,
    retired_at     BIGINT
);

CREATE TABLE revoked_tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    family      TEXT COLLATE "C" NOT NULL,
    token_hash  BYTEA NOT NULL,
    client      TEXT COLLATE "C" NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    subject     TEXT,
    scope       TEXT NOT NULL,
    resource    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT,
    replaced_by TEXT,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE authorization_codes (
    code_hash      BYTEA PRIMARY KEY,
    client         TEXT COLLATE "C" NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    resource       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT,
    family         TEXT
);
