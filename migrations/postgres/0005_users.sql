-- People who sign in so that agents act on their behalf, and what their groups may reach.
CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    idp           TEXT COLLATE "C",
    idp_subject   TEXT COLLATE "C",
    groups        TEXT NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT,
    last_login_at BIGINT
);
CREATE UNIQUE INDEX users_idp ON users (idp, idp_subject);

CREATE TABLE group_connections (
    group_name TEXT COLLATE "C" NOT NULL,
    server     TEXT COLLATE "C" NOT NULL REFERENCES servers (name) ON DELETE CASCADE,
    tools      TEXT NOT NULL,
    resources  BOOLEAN NOT NULL DEFAULT FALSE,
    prompts    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, server)
);

ALTER TABLE authorization_codes ADD COLUMN access_jti TEXT;
ALTER TABLE authorization_codes ADD COLUMN access_expires_at BIGINT;
