-- One audit chain per writer (see migrations/sqlite/0009_audit_chains.sql). The moves of
-- existing rows run on empty tables here and are kept so both schemas match at each version.
ALTER TABLE audit_events ADD COLUMN chain_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN chain_seq BIGINT NOT NULL DEFAULT 0;
UPDATE audit_events SET chain_seq = seq;
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain_id, chain_seq);

CREATE TABLE audit_chains (
    chain_id    BIGINT PRIMARY KEY,
    prev        TEXT COLLATE "C" NOT NULL UNIQUE,
    started_ms  BIGINT NOT NULL,
    writer      TEXT NOT NULL,
    hash        TEXT NOT NULL
);

CREATE TABLE audit_chain_checkpoints (
    chain_id    BIGINT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    ts_ms       BIGINT NOT NULL,
    mac         TEXT NOT NULL
);
INSERT INTO audit_chain_checkpoints (chain_id, seq, hash, ts_ms, mac)
    SELECT 0, seq, hash, ts_ms, mac FROM audit_checkpoint;
DROP TABLE audit_checkpoint;
