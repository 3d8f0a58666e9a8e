// End-to-end: the official TypeScript MCP SDK (pinned in package.json) as an OAuth client of
// Gatehouse's authorization server: discovery from the gateway's 401, dynamic client
// registration, authorization code with PKCE and `resource`, then tools; and scope step-up
// on a 403 insufficient_scope.
//
// The SDK's OAuthClientProvider interface is implemented here with in-memory storage; its
// `redirectToAuthorization` plays the browser (./browser.mjs: fetch, cookie jar, sign-in and
// consent forms) and keeps the callback's code, which goes back through
// `transport.finishAuth(code)` as an application would.
//
// Environment (set by e2e/run.sh):
//   E2E_OAUTH_BASE      the gateway's public URL (= the issuer), e.g. http://127.0.0.1:PORT
//   E2E_OAUTH_SERVER    the server (default demo), mounted at {base}/{server}/mcp
//   E2E_OAUTH_USER, E2E_OAUTH_PASSWORD   a user whose group may use E2E_OAUTH_USER_TOOLS
//   E2E_OAUTH_USER_TOOLS  comma-separated (default "echo,add")
//
// Run: node --test oauth.test.mjs
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';

import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { authorize, CookieJar } from './browser.mjs';

const base = process.env.E2E_OAUTH_BASE;
const username = process.env.E2E_OAUTH_USER;
const password = process.env.E2E_OAUTH_PASSWORD;
if (!base || !username || !password) {
  throw new Error('set E2E_OAUTH_BASE, E2E_OAUTH_USER and E2E_OAUTH_PASSWORD (e2e/run.sh does)');
}
const server = process.env.E2E_OAUTH_SERVER ?? 'demo';
const url = `${base}/${server}/mcp`;
const userTools = (process.env.E2E_OAUTH_USER_TOOLS ?? 'echo,add').split(',').map((s) => s.trim()).sort();
assert.ok(userTools.includes('echo') && userTools.includes('add'), 'the step-up test needs echo and add granted');
// Nothing listens here: the browser stops at the redirect, as a native app's would.
const redirectUrl = 'http://127.0.0.1:9/callback';

/** OAuthClientProvider with in-memory storage; the browser step is scripted. */
class TestProvider {
  constructor({ grantTypes = ['authorization_code', 'refresh_token'], authMethod = 'none' } = {}) {
    this.grantTypes = grantTypes;
    this.authMethod = authMethod;
    this.jar = new CookieJar(); // stays signed in between authorizations, like a browser
    this.authorizationUrls = [];
    this.callbacks = [];
    this.states = [];
    this.savedTokens = [];
    this.log = [];
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: 'gatehouse-e2e-ts',
      redirect_uris: [redirectUrl],
      grant_types: this.grantTypes,
      response_types: ['code'],
      token_endpoint_auth_method: this.authMethod,
    };
  }
  state() {
    const state = randomBytes(16).toString('hex');
    this.states.push(state);
    return state;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedTokens.push(tokens);
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizationUrls.push(authorizationUrl);
    const callback = await authorize(authorizationUrl, { username, password, jar: this.jar, log: (m) => this.log.push(m) });
    this.callbacks.push(callback);
  }
  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }
  codeVerifier() {
    return this._verifier;
  }

  /** The code of the last callback, after checking state and iss (the SDK 1.32 checks neither). */
  lastCode() {
    const callback = this.callbacks.at(-1);
    assert.ok(callback, 'the browser reached no callback');
    const params = callback.searchParams;
    assert.equal(params.get('error'), null, `authorization error: ${params.get('error_description')}`);
    assert.equal(params.get('state'), this.states.at(-1), 'state round-trips');
    assert.equal(params.get('iss'), base, 'RFC 9207 iss is the issuer');
    assert.equal(`${callback.origin}${callback.pathname}`, redirectUrl);
    return params.get('code');
  }
}

/** fetch that notes `METHOD path -> status`, the SDK's own discovery/registration included. */
function recordingFetch(lines) {
  return async (input, init) => {
    const response = await fetch(input, init);
    const u = new URL(input instanceof Request ? input.url : String(input));
    lines.push(`${init?.method ?? 'GET'} ${u.pathname} -> ${response.status}`);
    return response;
  };
}

function textOf(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

const open = [];
async function connect(provider, lines) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: recordingFetch(lines) });
  const client = new Client({ name: 'gatehouse-e2e-ts-oauth', version: '0.0.0' });
  await client.connect(transport);
  open.push(client);
  return { client, transport };
}

/** The error a promise rejects with (fails if it resolves). */
async function rejection(promise, what) {
  try {
    const value = await promise;
    assert.fail(`${what} should have been rejected, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

after(async () => {
  for (const client of open) await client.close().catch(() => {});
});

describe('authorization code with dynamic registration (TypeScript SDK)', () => {
  test('401 -> discovery -> DCR -> browser -> finishAuth -> tools', async () => {
    const provider = new TestProvider();
    const lines = [];
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: recordingFetch(lines) });
    const first = new Client({ name: 'gatehouse-e2e-ts-oauth', version: '0.0.0' });
    // The first connect meets the 401, runs discovery and registration, sends the "user" to
    // the authorization URL, and then rejects: the application must finish the flow.
    const err = await rejection(first.connect(transport), 'connect before authorization');
    assert.ok(err instanceof UnauthorizedError, `expected UnauthorizedError, got ${err}`);
    const flow = () => [...lines, ...provider.log].join('\n');
    assert.match(lines[0], new RegExp(`^POST /${server}/mcp -> 401$`), flow());
    assert.ok(lines.includes(`GET /.well-known/oauth-protected-resource/${server}/mcp -> 200`), flow());
    assert.ok(lines.includes('GET /.well-known/oauth-authorization-server -> 200'), flow());
    assert.ok(lines.includes('POST /oauth/register -> 201'), flow());

    const info = provider.clientInformation();
    assert.match(info.client_id, /^dcr_/);
    assert.equal(info.token_endpoint_auth_method, 'none');
    assert.equal(provider.authorizationUrls.length, 1);
    const q = provider.authorizationUrls[0].searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), info.client_id);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.get('code_challenge')?.length, 43);
    assert.equal(q.get('resource'), url);
    assert.equal(q.get('scope'), `mcp:${server}`, 'the scope of the 401 challenge');
    assert.equal(q.get('redirect_uri'), redirectUrl);

    await transport.finishAuth(provider.lastCode());
    const tokens = provider.tokens();
    assert.ok(tokens?.access_token && tokens.refresh_token, 'tokens saved');
    assert.equal(tokens.scope, `mcp:${server}`);
    await first.close();

    const { client } = await connect(provider, lines);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), userTools);
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hello via oauth' } })), 'hello via oauth');
    assert.equal(textOf(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })), '5');
    assert.equal(provider.authorizationUrls.length, 1, 'one trip through the browser');
  });
});

describe('scope step-up on 403 insufficient_scope (TypeScript SDK)', () => {
  // The SDK picks the scope of the 401 challenge (mcp:{server}, everything the user may do)
  // before `clientMetadata.scope`, so a narrow first token is asked for through the SDK's
  // exported `auth()` with an explicit `scope`, before connecting.
  async function narrowToken(provider) {
    assert.equal(await auth(provider, { serverUrl: url, scope: `mcp:${server}:tool:echo` }), 'REDIRECT');
    assert.equal(provider.authorizationUrls.at(-1).searchParams.get('scope'), `mcp:${server}:tool:echo`);
    assert.equal(await auth(provider, { serverUrl: url, authorizationCode: provider.lastCode() }), 'AUTHORIZED');
    assert.equal(provider.tokens().scope, `mcp:${server}:tool:echo`);
  }

  test('without a refresh token: re-authorization with the challenged scope, then the call succeeds', async () => {
    const provider = new TestProvider({ grantTypes: ['authorization_code'] });
    await narrowToken(provider);
    assert.equal(provider.tokens().refresh_token, undefined, 'no refresh_token grant, no refresh token');
    const lines = [];
    const { client, transport } = await connect(provider, lines);
    // (The listing follows the user's grant, not the token's scope: `add` is visible, which
    // is what lets a client find out that it can step up to it.)
    assert.ok((await client.listTools()).tools.some((t) => t.name === 'echo'));
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'narrow' } })), 'narrow');

    // `add` is granted to the user's group but not in the token: 403 insufficient_scope. The
    // SDK re-authorizes with the challenged scope; as with the first authorization, it hands
    // over to the application (UnauthorizedError) until the code comes back.
    const err = await rejection(client.callTool({ name: 'add', arguments: { a: 40, b: 2 } }), 'add with a narrow token');
    assert.ok(err instanceof UnauthorizedError, `expected UnauthorizedError, got ${err}`);
    assert.ok(lines.includes(`POST /${server}/mcp -> 403`), lines.join('\n'));
    assert.equal(provider.authorizationUrls.length, 2);
    const asked = provider.authorizationUrls[1].searchParams.get('scope').split(' ').sort();
    // Gatehouse's challenge names what the token had plus what the call needs, so the SDK
    // (which replaces its scope with the challenge instead of merging) keeps `echo`.
    assert.deepEqual(asked, [`mcp:${server}:tool:add`, `mcp:${server}:tool:echo`]);
    await transport.finishAuth(provider.lastCode());
    assert.deepEqual(provider.tokens().scope.split(' ').sort(), asked);

    // Same session, same transport: the retried call now succeeds, and echo still works.
    assert.equal(textOf(await client.callTool({ name: 'add', arguments: { a: 40, b: 2 } })), '42');
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'still' } })), 'still');
  });

  test('with a refresh token: the SDK refreshes instead of re-authorizing, and gives up (SDK 1.32.2 behaviour)', async () => {
    // auth() tries a refresh before a new authorization whenever it holds a refresh token,
    // and a refresh cannot widen the scope (RFC 6749 §6), so the retried call meets the same
    // 403 and the transport stops with "Server returned 403 after trying upscoping".
    const provider = new TestProvider();
    await narrowToken(provider);
    const narrow = provider.tokens();
    assert.ok(narrow.refresh_token);
    const lines = [];
    const { client } = await connect(provider, lines);
    const err = await rejection(client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }), 'add with a narrow token');
    assert.ok(err instanceof StreamableHTTPError, `expected StreamableHTTPError, got ${err}`);
    assert.equal(err.code, 403);
    assert.match(err.message, /after trying upscoping/);
    assert.equal(provider.authorizationUrls.length, 1, 'no second authorization was started');
    assert.equal(lines.filter((l) => l === `POST /${server}/mcp -> 403`).length, 2, lines.join('\n'));
    assert.ok(lines.includes('POST /oauth/token -> 200'), `a refresh happened:\n${lines.join('\n')}`);
    assert.notEqual(provider.tokens().access_token, narrow.access_token);
    assert.equal(provider.tokens().scope, narrow.scope, 'the refreshed token has the old scope');
    // The session survives the refusal.
    assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'alive' } })), 'alive');
  });
});
