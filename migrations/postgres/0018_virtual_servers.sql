-- A server may aggregate other servers instead of reaching an upstream (ADR 0006 §4): the
-- names of its members as a JSON array, in the order their lists are merged. NULL for a
-- server with an upstream of its own.
ALTER TABLE servers ADD COLUMN members TEXT;
