-- Upstream credentials beyond a static header (ADR 0006 §5-6): the token-fetching settings as
-- JSON (no secret in it), the client secret or private key they need sealed with the
-- server's credential context, and the header that carries Gatehouse's signed assertion of
-- the caller to the upstream.
ALTER TABLE servers ADD COLUMN upstream_auth TEXT;
ALTER TABLE servers ADD COLUMN upstream_secret_sealed BYTEA;
ALTER TABLE servers ADD COLUMN identity_header TEXT;
