-- Tool pinning: the hash of each tool definition a server has shown; a different definition
-- later is recorded as pending until an operator approves it.
ALTER TABLE servers ADD COLUMN pin_action TEXT NOT NULL DEFAULT 'block';

CREATE TABLE tool_pins (
    server             TEXT COLLATE "C" NOT NULL REFERENCES servers (name) ON DELETE CASCADE,
    tool               TEXT COLLATE "C" NOT NULL,
    approved_hash      TEXT,
    pending_hash       TEXT,
    pending_definition TEXT,
    pending_reason     TEXT,
    first_seen         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (server, tool)
);
