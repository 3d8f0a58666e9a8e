-- Gatehouse schema, SQLite. Times are epoch milliseconds (INTEGER); secrets are never stored
-- in clear: API keys as HMAC-SHA-256 under the pepper, upstream credentials AES-256-GCM sealed.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- generation: bumped in the same transaction as every change the snapshot depends on.
-- applied_generation / heartbeat_ms: written by a running server after it rebuilt its snapshot.
INSERT INTO meta (key, value) VALUES ('generation', 1), ('applied_generation', 0), ('heartbeat_ms', 0);

CREATE TABLE servers (
    name                  TEXT PRIMARY KEY,
    url                   TEXT NOT NULL,
    credential_header     TEXT,
    credential_sealed     BLOB,
    allow_anonymous       INTEGER NOT NULL DEFAULT 0,
    allow_unknown_methods INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL
);

CREATE TABLE clients (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    disabled_at INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    client       TEXT NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    label        TEXT NOT NULL DEFAULT '',
    secret_hash  BLOB NOT NULL,
    tools        TEXT,              -- JSON array of patterns narrowing the connection, or NULL
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    rotated_from TEXT,
    last_used_at INTEGER
);
CREATE INDEX api_keys_client ON api_keys (client);

CREATE TABLE connections (
    client     TEXT NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    server     TEXT NOT NULL REFERENCES servers (name) ON DELETE CASCADE,
    tools      TEXT NOT NULL,       -- JSON array of tool patterns
    resources  INTEGER NOT NULL DEFAULT 0,
    prompts    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client, server)
);

CREATE TABLE audit_events (
    seq             INTEGER PRIMARY KEY,
    ts_ms           INTEGER NOT NULL,
    request_id      TEXT NOT NULL,
    client          TEXT,
    credential_id   TEXT,
    user_id         TEXT,
    ip              TEXT,
    country         TEXT,
    server          TEXT,
    http_method     TEXT NOT NULL,
    rpc_method      TEXT,
    tool            TEXT,
    decision        TEXT NOT NULL,
    reason          TEXT,
    status          INTEGER NOT NULL,
    upstream_status INTEGER,
    latency_us      INTEGER NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_events_ts ON audit_events (ts_ms);
CREATE INDEX audit_events_client ON audit_events (client, ts_ms);
CREATE INDEX audit_events_server ON audit_events (server, ts_ms);
