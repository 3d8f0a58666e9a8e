// Enterprise-managed authorization with the TypeScript SDK's own provider: the v2 client
// package's `CrossAppAccessProvider` discovers Gatehouse's authorization server from the
// gateway's 401, asks its `assertion` callback for an ID-JAG (obtained here with the SDK's
// `discoverAndRequestJwtAuthGrant`: RFC 8693 token exchange at the IdP stand-in, from the ID
// token the test signed in for), redeems it with the jwt-bearer grant (client_secret_basic),
// and calls a tool as the person.
// Run by e2e/federation/test_federation.py with MCP_URL, ISSUER, IDP_URL, ID_TOKEN,
// IDP_CLIENT_ID, IDP_CLIENT_SECRET, CLIENT_ID and CLIENT_SECRET; prints the echoed text and the
// ID-JAG's audience, exits 1 on any failure.
import {
  Client,
  CrossAppAccessProvider,
  StreamableHTTPClientTransport,
  discoverAndRequestJwtAuthGrant,
} from '@modelcontextprotocol/client';

const env = process.env;
let audience;
const authProvider = new CrossAppAccessProvider({
  clientId: env.CLIENT_ID,
  clientSecret: env.CLIENT_SECRET,
  expectedIssuer: env.ISSUER,
  assertion: async (ctx) => {
    audience = ctx.authorizationServerUrl;
    const grant = await discoverAndRequestJwtAuthGrant({
      idpUrl: env.IDP_URL,
      audience: ctx.authorizationServerUrl,
      resource: ctx.resourceUrl,
      idToken: env.ID_TOKEN,
      clientId: env.IDP_CLIENT_ID,
      clientSecret: env.IDP_CLIENT_SECRET,
      scope: ctx.scope,
      fetchFn: ctx.fetchFn,
    });
    return grant.jwtAuthGrant;
  },
});
const client = new Client({ name: 'gatehouse-e2e-cross-app', version: '0.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), { authProvider });
try {
  await client.connect(transport);
  const result = await client.callTool({ name: 'echo', arguments: { text: 'as alice (ts)' } });
  if (result.isError) throw new Error(JSON.stringify(result));
  console.log(result.content.map((c) => c.text ?? '').join(''));
  console.log(`audience=${audience}`);
  await client.close();
} catch (error) {
  console.error(`cross-app access client failed: ${error?.stack ?? error}`);
  process.exit(1);
}
