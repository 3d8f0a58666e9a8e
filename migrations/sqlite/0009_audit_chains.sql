-- One audit chain per writer: several processes append to one table, each to a chain of its
-- own, so none races another for a shared head.

-- Rows written before this migration form chain 0, numbered as before: they keep their
-- hashes (which cover `seq`) byte for byte.
ALTER TABLE audit_events ADD COLUMN chain_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0;
UPDATE audit_events SET chain_seq = seq;
-- `seq` stays the row's place in the table (commit order across all chains).
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain_id, chain_seq);

-- The chain registry, itself a chain: each entry's `prev` is the hash of the entry before it
-- (the first entry's, the head of chain 0 or zeros), so a chain deleted with its entry breaks
-- the next entry's link. An entry is written in the transaction of its chain's first rows.
CREATE TABLE audit_chains (
    chain_id    INTEGER PRIMARY KEY,
    prev        TEXT NOT NULL UNIQUE,
    started_ms  INTEGER NOT NULL,
    writer      TEXT NOT NULL,
    hash        TEXT NOT NULL
);

-- One signed checkpoint per chain, moved in each append's transaction.
CREATE TABLE audit_chain_checkpoints (
    chain_id    INTEGER PRIMARY KEY,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    ts_ms       INTEGER NOT NULL,
    mac         TEXT NOT NULL
);
INSERT INTO audit_chain_checkpoints (chain_id, seq, hash, ts_ms, mac)
    SELECT 0, seq, hash, ts_ms, mac FROM audit_checkpoint;
DROP TABLE audit_checkpoint;
