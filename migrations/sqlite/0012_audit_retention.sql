-- Retention (audit.retention): rows older than the period are archived into evidence bundles
-- and removed. Each removal leaves a seal per chain, signed with the evidence key: the last
-- removed row of the chain and the bundle that holds it, so `audit verify` starts each chain
-- from its seal and the archives plus the live table still verify end to end.
CREATE TABLE audit_seals (
    chain_id      INTEGER NOT NULL,
    seq           INTEGER NOT NULL,     -- the last removed row's chain_seq
    hash          TEXT NOT NULL,        -- and its chain hash
    upto_seq      INTEGER NOT NULL,     -- rows with seq <= this were removed
    bundle        TEXT NOT NULL,        -- the archive's file name
    bundle_digest TEXT NOT NULL,        -- SHA-256 of the archive
    sealed_ms     INTEGER NOT NULL,
    signature     TEXT NOT NULL,        -- Ed25519 with the evidence key, hex
    PRIMARY KEY (chain_id, seq)
);

-- One retention run at a time across replicas: whoever holds the lease (until until_ms).
CREATE TABLE audit_retention_lease (
    id        INTEGER PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  INTEGER NOT NULL
);
INSERT INTO audit_retention_lease (id, holder, until_ms) VALUES (1, '', 0);
