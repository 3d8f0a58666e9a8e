-- One row per running server (replica): the generation it has applied and when it last
-- reported.
CREATE TABLE replicas (
    replica_id         TEXT COLLATE "C" PRIMARY KEY,
    applied_generation BIGINT NOT NULL,
    heartbeat_ms       BIGINT NOT NULL,
    started_ms         BIGINT NOT NULL,
    version            TEXT NOT NULL,
    listen             TEXT NOT NULL
);

DELETE FROM meta WHERE key IN ('applied_generation', 'heartbeat_ms');
