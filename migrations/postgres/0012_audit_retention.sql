-- Retention seals and the retention lease (see migrations/sqlite/0012_audit_retention.sql).
CREATE TABLE audit_seals (
    chain_id      BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    upto_seq      BIGINT NOT NULL,
    bundle        TEXT NOT NULL,
    bundle_digest TEXT NOT NULL,
    sealed_ms     BIGINT NOT NULL,
    signature     TEXT NOT NULL,
    PRIMARY KEY (chain_id, seq)
);

CREATE TABLE audit_retention_lease (
    id        BIGINT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  BIGINT NOT NULL
);
INSERT INTO audit_retention_lease (id, holder, until_ms) VALUES (1, '', 0);
