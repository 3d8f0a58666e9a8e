-- RFC 9449 §10: a client may bind its authorization code to a DPoP key by naming the key's
-- JWK thumbprint (`dpop_jkt`) at the authorization request; the token request that redeems
-- the code must then carry a proof made with that key.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;

-- A public client's refresh token bound to a DPoP key is stored under a hash that includes
-- the key, so only its holder can redeem it; revocation (RFC 7009) carries no proof, so such
-- tokens also keep the hash of the token alone, by which revocation finds them.
ALTER TABLE refresh_tokens ADD COLUMN revocation_hash BYTEA;
CREATE INDEX refresh_tokens_revocation ON refresh_tokens (revocation_hash)
    WHERE revocation_hash IS NOT NULL;

-- Every refresh and revocation looks a token up by its hash; without an index that was a scan
-- of every refresh token alive (they live 30 days by default).
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
