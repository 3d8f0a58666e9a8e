// The upstream OpenID Connect provider for the sign-in test: oidc-provider with one client
// (Gatehouse), PKCE required, and a fixed test user whose login and consent complete without
// a page (the "browser" only follows redirects). Loopback only.
//   ISSUER=http://127.0.0.1:P GATEHOUSE=http://127.0.0.1:Q CLIENT_SECRET=… node provider.mjs
import { Provider, errors } from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const ISSUER = process.env.ISSUER;
const GATEHOUSE = process.env.GATEHOUSE;
// The MCP server whose tokens this provider also issues (as an external authorization server).
const RESOURCE = `${GATEHOUSE}/demo/mcp`;
const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const provider = new Provider(ISSUER, {
  jwks: { keys: [{ ...jwk, kid: 'idp-1', alg: 'ES256', use: 'sig' }] },
  clients: [{
    client_id: 'gatehouse',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [`${GATEHOUSE}/oauth/upstream/callback`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
  }, {
    client_id: 'svc',
    client_secret: process.env.CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    id_token_signed_response_alg: 'ES256',
  }],
  pkce: { required: () => true },
  // Put the requested claims in the ID token itself (Gatehouse reads only the ID token).
  conformIdTokenClaims: false,
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: 'carol@example.test', email_verified: true, name: 'Carol Test',
          groups: ['mcp-analysts', 'unrelated-team'],
        };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      getResourceServerInfo: async (ctx, resource) => {
        if (resource !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'mcp:demo mcp:demo:read', audience: RESOURCE, accessTokenTTL: 300,
          accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
  if (prompt.name === 'login') {
    return provider.interactionFinished(ctx.req, ctx.res,
      { login: { accountId: 'carol-0001' } }, { mergeWithLastSubmission: false });
  }
  const grant = grantId ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  const id = await grant.save();
  return provider.interactionFinished(ctx.req, ctx.res,
    { consent: grantId ? {} : { grantId: id } }, { mergeWithLastSubmission: true });
});

provider.listen(Number(new URL(ISSUER).port), '127.0.0.1', () => {
  console.log(`listening on ${ISSUER}`);
});
