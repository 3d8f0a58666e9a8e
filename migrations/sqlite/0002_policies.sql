-- Policies attach to a scope (any of client, server, tool pattern; NULL = any) and carry a
-- kind-specific JSON spec, validated by Gatehouse before it is stored.
CREATE TABLE policies (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    client     TEXT,
    server     TEXT,
    tools      TEXT,
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Quota consumption per policy and subject in the current calendar window, written back from
-- memory periodically and at shutdown so a restart does not reset a quota.
CREATE TABLE quota_usage (
    policy_id    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    used         INTEGER NOT NULL,
    PRIMARY KEY (policy_id, subject)
);
