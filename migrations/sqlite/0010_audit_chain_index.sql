-- The (chain_id, chain_seq) index cost every audited request a second B-tree insert and a
-- uniqueness probe. Nothing needs it: one writer appends to a chain, numbering it as it
-- goes, so a chain's rows lie in table (`seq`) order; verification walks the table in that
-- order, and a writer finds its chain's head by reading back from the newest row.
DROP INDEX audit_events_chain_seq;
