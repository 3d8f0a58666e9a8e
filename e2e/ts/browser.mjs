// A scripted "browser" for Gatehouse's authorization endpoint (e2e tests only): fetch with
// manual redirects and a small cookie jar. It follows the authorization URL, signs in on the
// login form (username, password, hidden req + csrf, with the nonce cookie set alongside),
// approves on the consent form (hidden req + csrf, decision=approve), and stops at the first
// redirect that leaves the authorization server: the client's redirect URI, returned as a URL
// (not fetched). The same logic in Python: e2e/oauth/browser.py.

const MAX_STEPS = 12;
const TIMEOUT_MS = 15_000;

export class CookieJar {
  #cookies = new Map(); // name -> { value, path }

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const attribute of attributes) {
        const [k, v = ''] = attribute.split('=');
        if (k.toLowerCase() === 'path') path = v || '/';
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, { value, path });
    }
  }

  header(url) {
    const path = new URL(url).pathname;
    return [...this.#cookies]
      .filter(([, c]) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
  }
}

const decode = (s) =>
  s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The first POST form of a page: action, hidden/text inputs by name, and its buttons. */
function parseForm(html) {
  const form = /<form\b[^>]*\bmethod="post"[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const inputs = {};
  for (const m of form[2].matchAll(/<input\b([^>]*)>/gi)) {
    const name = /\bname="([^"]*)"/.exec(m[1])?.[1];
    if (name) inputs[decode(name)] = decode(/\bvalue="([^"]*)"/.exec(m[1])?.[1] ?? '');
  }
  const buttons = [...form[2].matchAll(/<button\b[^>]*\bname="([^"]*)"[^>]*\bvalue="([^"]*)"/gi)].map((m) => [
    decode(m[1]),
    decode(m[2]),
  ]);
  return { action: decode(form[1]), inputs, buttons };
}

function describe(html) {
  const error = /<p class="error">([\s\S]*?)<\/p>/.exec(html)?.[1];
  const title = /<title>([\s\S]*?)<\/title>/.exec(html)?.[1];
  return decode(error ?? title ?? html.slice(0, 200));
}

/**
 * Runs the browser part of an authorization request and returns the callback URL (a URL).
 * `jar` may be shared between calls: a browser that stays signed in.
 */
export async function authorize(authorizationUrl, { username, password, decision = 'approve', jar = new CookieJar(), log } = {}) {
  const server = new URL(authorizationUrl).origin;
  let url = String(authorizationUrl);
  let init = { method: 'GET' };
  for (let step = 0; step < MAX_STEPS; step++) {
    const cookie = jar.header(url);
    const response = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers ?? {}), ...(cookie ? { cookie } : {}) },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    jar.store(response);
    const body = await response.text();
    log?.(`browser: ${init.method} ${url.split('?')[0]} -> ${response.status}`);
    if (response.status >= 300 && response.status < 400) {
      const target = new URL(response.headers.get('location'), url);
      if (target.origin !== server) return target;
      url = target.href;
      init = { method: 'GET' };
      continue;
    }
    if (![200, 401].includes(response.status) || !(response.headers.get('content-type') ?? '').includes('text/html')) {
      throw new Error(`${url}: HTTP ${response.status}: ${describe(body)}`);
    }
    const form = parseForm(body);
    if (!form) throw new Error(`${url}: no form: ${describe(body)}`);
    const data = { ...form.inputs };
    if ('password' in data) {
      if (response.status === 401) throw new Error(`sign-in refused: ${describe(body)}`);
      data.username = username;
      data.password = password;
    } else if (form.buttons.some(([name]) => name === 'decision')) {
      if (!form.buttons.some(([name, value]) => name === 'decision' && value === decision)) {
        throw new Error(`no ${decision} button on the consent page`);
      }
      data.decision = decision;
    } else {
      throw new Error(`${url}: unexpected form posting to ${form.action}`);
    }
    url = new URL(form.action, url).href;
    init = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(data).toString(),
    };
  }
  throw new Error(`no redirect to the client after ${MAX_STEPS} steps`);
}
