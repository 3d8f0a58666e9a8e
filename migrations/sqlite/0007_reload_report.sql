-- What the running server's last configuration reload reported, as JSON: the generation it
-- applied, the stored records it could not compile (each replaced by a deny-all for its scope)
-- and whether reading the store failed. Written by the server, read by `gatehouse status`.
CREATE TABLE reload_report (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    report TEXT NOT NULL
);
