-- RFC 9449 §10: a client may bind its authorization code to a DPoP key by naming the key's
-- JWK thumbprint (`dpop_jkt`) at the authorization request; the token request that redeems
-- the code must then carry a proof made with that key.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
