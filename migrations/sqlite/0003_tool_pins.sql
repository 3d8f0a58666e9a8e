-- Tool pinning: the hash of each tool definition (name, description, input schema) a server
-- has shown, trusted on first sight unless it carries prompt-injection markers. A different
-- definition later is recorded as pending until an operator approves it.
ALTER TABLE servers ADD COLUMN pin_action TEXT NOT NULL DEFAULT 'block';

CREATE TABLE tool_pins (
    server             TEXT NOT NULL REFERENCES servers (name) ON DELETE CASCADE,
    tool               TEXT NOT NULL,
    approved_hash      TEXT,
    pending_hash       TEXT,
    pending_definition TEXT,
    pending_reason     TEXT,
    first_seen         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (server, tool)
);
