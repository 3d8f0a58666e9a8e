-- One row per running server (replica), written by it about once a second: the generation it
-- has applied and when it last reported. The CLI waits until every replica with a recent
-- heartbeat has applied its change; a graceful shutdown deletes the row. Replaces the single
-- applied_generation / heartbeat_ms pair in meta, which the last writer won.
CREATE TABLE replicas (
    replica_id         TEXT PRIMARY KEY,
    applied_generation INTEGER NOT NULL,
    heartbeat_ms       INTEGER NOT NULL,
    started_ms         INTEGER NOT NULL,
    version            TEXT NOT NULL,
    listen             TEXT NOT NULL
);

DELETE FROM meta WHERE key IN ('applied_generation', 'heartbeat_ms');
