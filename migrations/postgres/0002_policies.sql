-- Policies attach to a scope (any of client, server, tool pattern; NULL = any) and carry a
-- kind-specific JSON spec, validated by Gatehouse before it is stored.
CREATE TABLE policies (
    id         TEXT COLLATE "C" PRIMARY KEY,
    kind       TEXT NOT NULL,
    client     TEXT COLLATE "C",
    server     TEXT COLLATE "C",
    tools      TEXT,
    spec       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Quota consumption per policy and subject in the current calendar window.
CREATE TABLE quota_usage (
    policy_id    TEXT COLLATE "C" NOT NULL,
    subject      TEXT COLLATE "C" NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    PRIMARY KEY (policy_id, subject)
);
