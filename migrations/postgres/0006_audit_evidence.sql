-- The audit trail as evidence: versioned row hashes, outcomes, batch messages and a signed
-- checkpoint. The checkpoint's copy in 0009 runs on an empty table here; kept for numbering.
ALTER TABLE audit_events ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN outcome TEXT;
ALTER TABLE audit_events ADD COLUMN response_bytes BIGINT;
ALTER TABLE audit_events ADD COLUMN batch TEXT;

CREATE TABLE audit_checkpoint (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    seq     BIGINT NOT NULL,
    hash    TEXT NOT NULL,
    ts_ms   BIGINT NOT NULL,
    mac     TEXT NOT NULL
);

-- Queries filter by client or server and order by seq. SQLite's single-column index is
-- ordered by rowid (`seq`) within a value; PostgreSQL's is not, so `seq` is named.
DROP INDEX audit_events_client;
DROP INDEX audit_events_server;
CREATE INDEX audit_events_client_seq ON audit_events (client, seq);
CREATE INDEX audit_events_server_seq ON audit_events (server, seq);
