// oidc-provider configured for the client-credentials grant only, issuing JWT access tokens
// (ES256, at+jwt, audience = RESOURCE) like Gatehouse does: the token-endpoint reference.
//   ISSUER=http://127.0.0.1:18084 RESOURCE=http://127.0.0.1:18082/perf/mcp node server.mjs
import { Provider, errors } from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const ISSUER = process.env.ISSUER ?? 'http://127.0.0.1:18084';
const RESOURCE = process.env.RESOURCE ?? 'http://127.0.0.1:18082/perf/mcp';
const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const provider = new Provider(ISSUER, {
  jwks: { keys: [{ ...jwk, kid: 'k1', alg: 'ES256', use: 'sig' }] },
  clients: [{
    client_id: 'bench', client_secret: 'bench-secret-bench-secret',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
  }],
  // The only key is ES256, so nothing may default to RS256.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      getResourceServerInfo: async (ctx, resource) => {
        if (resource !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'mcp:perf', audience: RESOURCE, accessTokenTTL: 600,
          accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
provider.listen(Number(new URL(ISSUER).port), '127.0.0.1');
