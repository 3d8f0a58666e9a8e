// End-to-end: the TypeScript MCP SDK client through a Gatehouse server that carries the
// README's guardrail set on both directions (e2e/run.sh group guardrails-ts provisions it):
// redaction reaches the client, secrets are refused as JSON-RPC errors, and nothing the
// protocol relies on (protocol version, capabilities, server info, tool schemas) changes.
//
// Environment (set by e2e/run.sh):
//   E2E_MCP_URL     the guarded gateway endpoint, e.g. http://127.0.0.1:PORT/guarded/mcp
//   E2E_API_KEY     an API key of a client granted `echo` and `add` there
//   E2E_DIRECT_URL  the same upstream without Gatehouse, to compare against
//
// Run: node --test guardrails.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const url = process.env.E2E_MCP_URL;
const apiKey = process.env.E2E_API_KEY;
const directUrl = process.env.E2E_DIRECT_URL;
if (!url || !apiKey || !directUrl) {
  throw new Error('set E2E_MCP_URL, E2E_API_KEY and E2E_DIRECT_URL (e2e/run.sh does)');
}

async function connect(endpoint, headers) {
  const client = new Client({ name: 'gatehouse-e2e-ts', version: '2025.06.18' });
  const transport = new StreamableHTTPClientTransport(new URL(endpoint), {
    requestInit: { headers },
  });
  await client.connect(transport);
  return { client, transport };
}

function textOf(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

describe('through the README guardrail set, both directions', () => {
  let guarded;
  let direct;
  before(async () => {
    guarded = await connect(url, { Authorization: `Bearer ${apiKey}` });
    direct = await connect(directUrl, {});
  });
  after(async () => {
    for (const conn of [guarded, direct]) {
      await conn?.transport.terminateSession().catch(() => {});
      await conn?.client.close();
    }
  });

  test('initialize is untouched: version, capabilities, server info, instructions', () => {
    assert.equal(guarded.transport.protocolVersion, direct.transport.protocolVersion);
    assert.deepEqual(guarded.client.getServerVersion(), direct.client.getServerVersion());
    assert.deepEqual(guarded.client.getServerCapabilities(), direct.client.getServerCapabilities());
    assert.equal(guarded.client.getInstructions(), direct.client.getInstructions());
  });

  test('granted tool definitions are those of the upstream, byte for byte', async () => {
    const mine = (await guarded.client.listTools()).tools;
    const theirs = (await direct.client.listTools()).tools;
    assert.deepEqual(mine.map((t) => t.name).sort(), ['add', 'echo']);
    for (const tool of mine) {
      assert.deepEqual(tool, theirs.find((t) => t.name === tool.name));
    }
  });

  test('personal data is redacted on the way, dates and versions are not', async () => {
    // (A card number would be refused: `no-secrets` blocks the default set, cards included,
    // and blocking rules run before redacting ones.)
    const text = 'mail bob@example.com, call +44 20 7946 0958 on 2025-06-18 at 10:30, build 1.2.3';
    const result = await guarded.client.callTool({ name: 'echo', arguments: { text } });
    assert.notEqual(result.isError, true, JSON.stringify(result));
    assert.equal(
      textOf(result),
      'mail [REDACTED:email], call [REDACTED:phone] on 2025-06-18 at 10:30, build 1.2.3',
    );
  });

  test('a secret is refused with a JSON-RPC error, and the session goes on', async () => {
    await assert.rejects(
      guarded.client.callTool({ name: 'echo', arguments: { text: 'key AKIAIOSFODNN7EXAMPLE' } }),
      (err) => {
        assert.equal(err.code, -32012, err.message);
        assert.equal(err.data?.reason, 'guardrail_blocked', err.message);
        assert.deepEqual(err.data?.guardrail, { rule: 'no-secrets', detector: 'aws_access_key', direction: 'request' });
        assert.ok(!err.message.includes('AKIA'), 'never the matched text');
        return true;
      },
    );
    const result = await guarded.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    assert.equal(textOf(result), '5');
  });
});
