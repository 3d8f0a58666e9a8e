-- People who sign in (locally or through an upstream OpenID Connect provider) so that agents
-- act on their behalf, and what their groups may reach.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    -- argon2id PHC string, local users only.
    password_hash TEXT,
    -- Upstream provider name and its `sub`, federated users only.
    idp           TEXT,
    idp_subject   TEXT,
    groups        TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER,
    last_login_at INTEGER
);
CREATE UNIQUE INDEX users_idp ON users (idp, idp_subject);

-- Connections for user groups: a user-delegated token reaches what the user's groups do.
CREATE TABLE group_connections (
    group_name TEXT NOT NULL,
    server     TEXT NOT NULL REFERENCES servers (name) ON DELETE CASCADE,
    tools      TEXT NOT NULL,
    resources  INTEGER NOT NULL DEFAULT 0,
    prompts    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (group_name, server)
);

-- What a redeemed code issued, so that a replay can revoke it.
ALTER TABLE authorization_codes ADD COLUMN access_jti TEXT;
ALTER TABLE authorization_codes ADD COLUMN access_expires_at INTEGER;
