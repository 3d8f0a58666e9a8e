-- The rule that decided a request (`policy:<id>`, `guardrail:<name>`, `grant`, `scope`, `pin`;
-- docs/audit.md), so the trail can be searched by rule. NULL when no rule decided (an allowed
-- call, a protocol error) and on every row written before this migration: the hash of a row
-- leaves an absent rule out, so those rows keep their hashes.
ALTER TABLE audit_events ADD COLUMN rule TEXT;

-- Most rows have no rule: a partial index holds only the decided ones. Ordered by rowid
-- (`seq`) within a value, so a search by rule reads only the rows it returns.
CREATE INDEX audit_events_rule_seq ON audit_events (rule) WHERE rule IS NOT NULL;
