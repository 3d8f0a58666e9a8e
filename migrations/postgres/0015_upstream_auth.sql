-- Upstream credentials beyond a static header (ADR 0006 §5-6): the token-fetching settings as
-- JSON (no secret in it), the client secret or private key they need sealed with the
-- server's credential context, and the header that carries Gatehouse's signed assertion of
-- the caller to the upstream.
ALTER TABLE servers ADD COLUMN upstream_auth TEXT;
ALTER TABLE servers ADD COLUMN upstream_secret_sealed BYTEA;
ALTER TABLE servers ADD COLUMN identity_header TEXT;

-- A person's own tokens at an upstream (per-user delegated credentials, ADR 0006 §5), sealed
-- with the master key; gone with the person or the server.
CREATE TABLE upstream_grants (
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server         TEXT NOT NULL REFERENCES servers (name) ON DELETE CASCADE,
    access_sealed  BYTEA NOT NULL,
    refresh_sealed BYTEA,
    -- Milliseconds since the Unix epoch; NULL when the upstream named no lifetime.
    expires_at     BIGINT,
    scope          TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    refreshed_at   BIGINT,
    PRIMARY KEY (user_id, server)
);
CREATE INDEX upstream_grants_server ON upstream_grants (server);
