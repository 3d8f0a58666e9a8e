// A workload's token as the TypeScript SDK's client assertion: `StaticPrivateKeyJwtProvider`
// (SDK 1.32.2) sends a prebuilt JWT as `client_assertion` of the client_credentials grant, which
// is how a platform token (here a GitHub Actions OIDC token the test minted) reaches Gatehouse.
// Run by e2e/federation/test_federation.py with MCP_URL, ISSUER, CLIENT_ID and ASSERTION; prints
// the echoed text, exits 1 on any failure.
import { StaticPrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const { MCP_URL, ISSUER, CLIENT_ID, ASSERTION } = process.env;
const authProvider = new StaticPrivateKeyJwtProvider({
    clientId: CLIENT_ID,
    jwtBearerAssertion: ASSERTION,
    expectedIssuer: ISSUER,
});
const client = new Client({ name: 'gatehouse-e2e-workload', version: '0.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider });
try {
    await client.connect(transport);
    const result = await client.callTool({ name: 'echo', arguments: { text: 'from the ts workload' } });
    if (result.isError) throw new Error(JSON.stringify(result));
    console.log(result.content.map((c) => c.text ?? '').join(''));
    await client.close();
} catch (error) {
    console.error(`workload client failed: ${error?.stack ?? error}`);
    process.exit(1);
}
