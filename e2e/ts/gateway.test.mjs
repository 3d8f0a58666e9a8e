// End-to-end: the official TypeScript MCP SDK client (pinned in package.json) talks to an MCP
// server through Gatehouse with an API key.
//
// Environment (set by e2e/run.sh):
//   E2E_MCP_URL   the gateway endpoint of a server, e.g. http://127.0.0.1:PORT/demo/mcp
//   E2E_API_KEY   an API key (gth_...) of a client granted exactly the tools `echo` and `add`
//   E2E_GRANTED   optional, comma-separated granted tools (default "echo,add")
//   E2E_DENIED    optional, a tool the upstream has but the client is not granted (default "delete_records")
//
// Run: node --test gateway.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const url = process.env.E2E_MCP_URL;
const apiKey = process.env.E2E_API_KEY;
if (!url || !apiKey) {
  throw new Error('set E2E_MCP_URL and E2E_API_KEY (e2e/run.sh does)');
}
const granted = (process.env.E2E_GRANTED ?? 'echo,add').split(',').map((s) => s.trim()).sort();
const denied = process.env.E2E_DENIED ?? 'delete_records';

/** A connected SDK client; `headers` go into every request via `requestInit.headers`. */
async function connect(headers) {
  const client = new Client({ name: 'gatehouse-e2e-ts', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers },
  });
  // Transport-level errors (e.g. a failing standalone GET stream) are reported here; keep
  // them for the assertion messages instead of printing them.
  const transportErrors = [];
  client.onerror = (err) => transportErrors.push(err);
  await client.connect(transport);
  return { client, transport, transportErrors };
}

/** The error a promise rejects with (fails if it resolves). */
async function rejection(promise, what) {
  try {
    const value = await promise;
    let shown;
    try {
      shown = JSON.stringify(value);
    } catch {
      shown = value?.constructor?.name ?? String(value);
    }
    assert.fail(`${what} should have been rejected, got ${shown}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

function textOf(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

describe('through Gatehouse with an API key (Authorization: Bearer)', () => {
  let conn;
  before(async () => {
    conn = await connect({ Authorization: `Bearer ${apiKey}` });
  });
  after(async () => {
    // terminateSession sends DELETE with the session id (the SDK's polite shutdown).
    await conn?.transport.terminateSession().catch(() => {});
    await conn?.client.close();
  });

  test('initialize negotiates a protocol version and exposes the upstream server info', () => {
    assert.ok(conn.client.getServerVersion(), 'server info after initialize');
    assert.ok(conn.client.getServerCapabilities()?.tools, 'tools capability advertised');
  });

  test('tools/list returns exactly the granted tools', async () => {
    const { tools } = await conn.client.listTools();
    const names = tools.map((t) => t.name).sort();
    assert.deepEqual(names, granted);
    assert.ok(!names.includes(denied), `${denied} must be filtered out`);
    const echo = tools.find((t) => t.name === 'echo');
    assert.equal(echo.inputSchema.type, 'object', 'tool schemas pass through unchanged');
  });

  test('tools/call echo returns the text', async () => {
    const text = 'hello through the gate ✓';
    const result = await conn.client.callTool({ name: 'echo', arguments: { text } });
    assert.notEqual(result.isError, true, JSON.stringify(result));
    assert.equal(textOf(result), text);
  });

  test('tools/call add returns the sum', async () => {
    const result = await conn.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    assert.notEqual(result.isError, true, JSON.stringify(result));
    assert.equal(textOf(result), '5');
  });

  test(`tools/call ${denied} (not granted) is rejected with HTTP 403 and a JSON-RPC error`, async () => {
    const err = await rejection(
      conn.client.callTool({ name: denied, arguments: { table: 'users' } }),
      `calling ${denied}`,
    );
    assert.ok(err instanceof StreamableHTTPError, `expected StreamableHTTPError, got ${err?.stack ?? err}`);
    assert.equal(err.code, 403, err.message);
    // The SDK puts the response body into the message: it must be the JSON-RPC error.
    const body = JSON.parse(err.message.slice(err.message.indexOf('{')));
    assert.equal(body.jsonrpc, '2.0');
    assert.equal(typeof body.error?.code, 'number', err.message);
    assert.equal(body.error?.data?.reason, 'tool_not_granted', err.message);
  });

  test('the session still works after a refused call', async () => {
    const result = await conn.client.callTool({ name: 'echo', arguments: { text: 'still here' } });
    assert.equal(textOf(result), 'still here');
  });

  test('no transport-level errors were reported besides the refused call', () => {
    // The SDK reports every failed POST to onerror as well as rejecting the request, so the
    // 403 of the refused call shows up here; anything else (e.g. a failing GET stream) must not.
    const unexpected = conn.transportErrors.filter(
      (e) => !(e instanceof StreamableHTTPError && e.code === 403 && e.message.includes('tool_not_granted')),
    );
    assert.deepEqual(unexpected.map((e) => String(e)), []);
  });
});

describe('through Gatehouse with an API key (X-API-Key)', () => {
  test('the same key in X-API-Key works', async () => {
    const { client, transport } = await connect({ 'X-API-Key': apiKey });
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), granted);
      const result = await client.callTool({ name: 'echo', arguments: { text: 'x-api-key' } });
      assert.equal(textOf(result), 'x-api-key');
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });
});

describe('rejected credentials', () => {
  test('a client without a key is rejected with 401', async () => {
    const err = await rejection(connect({}), 'connecting without a key');
    assert.ok(err instanceof StreamableHTTPError, `expected StreamableHTTPError, got ${err?.stack ?? err}`);
    assert.equal(err.code, 401, err.message);
  });

  test('a client with an unknown key is rejected with 401', async () => {
    const bogus = `gth_${'A'.repeat(40)}`;
    const err = await rejection(connect({ Authorization: `Bearer ${bogus}` }), 'connecting with a bogus key');
    assert.ok(err instanceof StreamableHTTPError, `expected StreamableHTTPError, got ${err?.stack ?? err}`);
    assert.equal(err.code, 401, err.message);
    assert.ok(!err.message.includes(bogus), 'the error must not echo the credential');
  });

  test('a bare POST without a key gets 401, WWW-Authenticate and a JSON-RPC error body', async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer\b/);
    const body = await res.json();
    assert.equal(body.jsonrpc, '2.0');
    // Refused before the body is read, so the id may be unknown (JSON-RPC then says null).
    assert.ok(body.id === 1 || body.id === null, `id ${JSON.stringify(body.id)}`);
    assert.equal(typeof body.error?.code, 'number');
    assert.equal(body.error?.data?.reason, 'missing_credential');
  });
});
