// End-to-end: the official TypeScript MCP SDK's v2 client package (pinned in package.json) as
// a client of Gatehouse's authorization server, with the identity features the v1 SDK in
// e2e/ts lacks:
//   - PrivateKeyJwtProvider: client credentials authenticated by an RS256 assertion the SDK
//     signs with `jose` (RFC 7523), against the JWKS registered for the client;
//   - DPoP (RFC 9449): a provider whose `dpop()` returns a DpopSession, so the SDK sends a
//     proof with its token request, receives a `token_type: DPoP` token bound to its key
//     (`cnf.jkt`), and presents it with a fresh proof per request; the same token without its
//     proof, or under the Bearer scheme, is refused.
//
// Environment (set by e2e/run.sh):
//   E2E_OAUTH_BASE        the gateway's public URL (= the issuer)
//   E2E_OAUTH_SERVER      the server (default demo), mounted at {base}/{server}/mcp
//   E2E_OAUTH_PKJWT_ID, E2E_OAUTH_PKJWT_KEY   a private_key_jwt client and its PKCS #8 key file
//   E2E_OAUTH_CC_BASIC_ID, E2E_OAUTH_CC_BASIC_SECRET   a client_secret_basic client
//   E2E_OAUTH_CLIENT_TOOLS  the tools those clients are granted (default "echo,add")
//
// Run: node --test identity.test.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import {
  Client,
  ClientCredentialsProvider,
  DpopSession,
  PrivateKeyJwtProvider,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (e2e/run.sh does)`);
  return value;
}

const base = required('E2E_OAUTH_BASE');
const server = process.env.E2E_OAUTH_SERVER ?? 'demo';
const url = `${base}/${server}/mcp`;
const clientTools = (process.env.E2E_OAUTH_CLIENT_TOOLS ?? 'echo,add').split(',').map((s) => s.trim()).sort();

/** Records every request the SDK makes: "METHOD path -> status". */
function recordingFetch(log) {
  return async (input, init) => {
    const response = await fetch(input, init);
    const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    log.push(`${init?.method ?? 'GET'} ${target.pathname} -> ${response.status}`);
    return response;
  };
}

function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

async function connectAndCall(provider, log, text) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    authProvider: provider,
    fetch: recordingFetch(log),
  });
  const client = new Client({ name: 'gatehouse-e2e-ts-v2', version: '1.0.0' });
  await client.connect(transport);
  try {
    const listed = await client.listTools();
    assert.deepEqual(listed.tools.map((t) => t.name).sort(), clientTools);
    const result = await client.callTool({ name: 'echo', arguments: { text } });
    assert.ok(!result.isError, JSON.stringify(result));
    assert.equal(result.content[0].text, text);
  } finally {
    await client.close();
  }
}

describe('TypeScript SDK v2 identity providers through Gatehouse', () => {
  test('PrivateKeyJwtProvider: client credentials with an assertion signed by the client key', async () => {
    const clientId = required('E2E_OAUTH_PKJWT_ID');
    const provider = new PrivateKeyJwtProvider({
      clientId,
      privateKey: readFileSync(required('E2E_OAUTH_PKJWT_KEY'), 'utf8'),
      algorithm: 'RS256',
      expectedIssuer: base,
    });
    const log = [];
    await connectAndCall(provider, log, 'signed by my key (ts)');
    assert.deepEqual(
      log.filter((line) => line.includes('/oauth/token')),
      ['POST /oauth/token -> 200'],
      log.join('\n'),
    );
    const claims = claimsOf(provider.tokens().access_token);
    assert.equal(claims.client_id, clientId);
    assert.equal(claims.aud, url);
  });

  test('DPoP: the token is bound to the session key and useless without a proof', async () => {
    const session = await DpopSession.create();
    class DpopClientCredentials extends ClientCredentialsProvider {
      dpop() {
        return session;
      }
    }
    const provider = new DpopClientCredentials({
      clientId: required('E2E_OAUTH_CC_BASIC_ID'),
      clientSecret: required('E2E_OAUTH_CC_BASIC_SECRET'),
      expectedIssuer: base,
    });
    const log = [];
    await connectAndCall(provider, log, 'proof of possession (ts)');
    const tokens = provider.tokens();
    assert.equal(tokens.token_type.toLowerCase(), 'dpop', JSON.stringify(tokens));
    assert.equal(claimsOf(tokens.access_token).cnf?.jkt, session.thumbprint);

    const initialize = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'thief', version: '1.0.0' },
      },
    });
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    for (const [label, authorization] of [
      ['as a bearer token', `Bearer ${tokens.access_token}`],
      ['under the DPoP scheme without a proof', `DPoP ${tokens.access_token}`],
    ]) {
      const response = await fetch(url, { method: 'POST', headers: { ...headers, authorization }, body: initialize });
      assert.equal(response.status, 401, `${label}: ${response.status}`);
      assert.match(response.headers.get('www-authenticate') ?? '', /^DPoP /, label);
    }
    // With a fresh proof by the session's key the same token works.
    const proof = await session.buildProof({ htm: 'POST', htu: url, accessToken: tokens.access_token });
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, authorization: `DPoP ${tokens.access_token}`, dpop: proof },
      body: initialize,
    });
    assert.equal(response.status, 200, await response.text());
  });
});
