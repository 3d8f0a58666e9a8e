-- OAuth 2.1 authorization server. Secrets are stored as HMAC-SHA-256 under the pepper, private
-- signing keys AES-256-GCM sealed; nothing here can be replayed from a copy of the database.

-- How a client authenticates at the token endpoint and what it may ask for (RFC 7591 names).
-- NULL for a client that only holds API keys.
ALTER TABLE clients ADD COLUMN oauth TEXT;

-- Several secrets may be valid at once so that a rotation can overlap.
CREATE TABLE client_secrets (
    id          TEXT PRIMARY KEY,
    client      TEXT NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX client_secrets_client ON client_secrets (client);

-- Access-token signing keys. A key is published (in the JWKS) from created_at, signs from
-- active_at, stops signing at retired_at and stays published until every token it signed has
-- expired (retired_at + the longest access-token lifetime).
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    active_at      INTEGER NOT NULL,
    retired_at     INTEGER
);

-- Access tokens revoked before their expiry; kept only until then.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);

-- Refresh tokens: one row per issued token; a family is every token descended from one grant.
-- Presenting a consumed token (outside the retry grace) revokes the whole family.
CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    token_hash  BLOB NOT NULL,
    client      TEXT NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    subject     TEXT,
    scope       TEXT NOT NULL,
    resource    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    replaced_by TEXT,
    revoked_at  INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- Authorization codes: single use, short-lived; `consumed_at` set on first redemption so a
-- replay can be detected (and what the code issued revoked).
CREATE TABLE authorization_codes (
    code_hash      BLOB PRIMARY KEY,
    client         TEXT NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    resource       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER,
    family         TEXT
);
