-- A server may be a local program spoken to over stdin/stdout (ADR 0006): its command,
-- arguments, working directory, sharing and limits as JSON, and its environment's values
-- sealed with the keyring like an injected credential. NULL for an HTTP server.
ALTER TABLE servers ADD COLUMN stdio TEXT;
ALTER TABLE servers ADD COLUMN stdio_env_sealed BYTEA;
