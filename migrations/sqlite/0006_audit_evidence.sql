-- The audit trail as evidence: versioned row hashes, how forwarded exchanges ended, every
-- message of a batch, and a signed checkpoint of the chain head kept apart from the rows.

-- Rows written before this migration were hashed in canonical form 1.
ALTER TABLE audit_events ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN outcome TEXT;
ALTER TABLE audit_events ADD COLUMN response_bytes INTEGER;
-- JSON array of {method, tool}; NULL for a single message.
ALTER TABLE audit_events ADD COLUMN batch TEXT;

-- One row: the last appended row's seq and hash, MAC'd, moved in each append's transaction.
CREATE TABLE audit_checkpoint (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    seq     INTEGER NOT NULL,
    hash    TEXT NOT NULL,
    ts_ms   INTEGER NOT NULL,
    mac     TEXT NOT NULL
);

-- Queries filter by client or server and order by seq. An index on the column alone is
-- ordered by (column, seq): a query reads only the rows it returns, newest or oldest first.
DROP INDEX audit_events_client;
DROP INDEX audit_events_server;
CREATE INDEX audit_events_client_seq ON audit_events (client);
CREATE INDEX audit_events_server_seq ON audit_events (server);
