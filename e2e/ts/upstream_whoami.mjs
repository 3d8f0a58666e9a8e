// Per-user upstream tokens with the TypeScript SDK (e2e/upstream-oauth): connects with the
// person's Gatehouse access token and calls `whoami`. Prints `user:<person>`, or, when Gatehouse
// asks the person to connect their account first, `link:<url>` from the SDK's
// UrlElicitationRequiredError (-32042). Run with MCP_URL and TOKEN; exits 1 on anything else.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';

const { MCP_URL, TOKEN } = process.env;
const client = new Client({ name: 'gatehouse-e2e-upstream-oauth', version: '0.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${TOKEN}` } },
});
try {
    await client.connect(transport);
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    if (result.isError) throw new Error(JSON.stringify(result));
    console.log(result.content.map((c) => c.text ?? '').join(''));
    await client.close();
} catch (error) {
    if (error instanceof UrlElicitationRequiredError && error.elicitations.length === 1
        && error.elicitations[0].mode === 'url') {
        console.log(`link:${error.elicitations[0].url}`);
    } else {
        console.error(`upstream whoami failed: ${error?.stack ?? error}`);
        process.exit(1);
    }
}
