-- The approved definition of a pinned tool (its JSON, at most 64 KiB), kept beside its hash so
-- a held change can be reviewed as a diff of before and after. NULL for pins approved before
-- this migration and for a definition over the bound: those show "approved definition not
-- recorded".
ALTER TABLE tool_pins ADD COLUMN approved_definition TEXT;
