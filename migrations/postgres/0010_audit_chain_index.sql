-- Nothing needs the (chain_id, chain_seq) index (see migrations/sqlite/0010): one writer
-- appends to a chain in table order.
DROP INDEX audit_events_chain_seq;
