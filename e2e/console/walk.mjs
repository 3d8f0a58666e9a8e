// The console walked as a new operator would, in Debian's Chromium (headless) driven by
// playwright-core: sign in with an admin token (keyboard only); register the example server
// and a local stdio program and see their tools; create a client, grant it a tool, issue a key and copy it; call with the
// key from outside the browser and watch the call arrive in the live audit view; make a
// refused call and read why; a stdio server's tool changes its definition: the call is held,
// the diff read and approved in the browser, the call served again; rotate and revoke the key;
// add a rate limit and read the 429 in the audit view; explain a refused call on the
// connections page; on a connection's page add a guardrail (a refusal shown beside its
// field); edit a policy; create a user and grant its group a server; register the client for
// the authorization code flow; read the settings (secrets masked), users, signing keys and the
// overview (traffic, upstream health, chain status). Each main page is audited with axe-core
// and a screenshot of it saved in SHOTS.
//
// Environment: ADMIN_URL, GATEWAY_URL, EXAMPLE_URL, ADMIN_TOKEN, SHOTS, NOTES_SCRIPT (the
// stdio server `notes`), NOTES_DESCRIPTION (the file it reads its tool's description from),
// CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

// axe-core, evaluated in the page through the browser's debugging protocol: the console's
// Content-Security-Policy admits no injected script tag, and stays on.
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const admin = env("ADMIN_URL");
const gateway = env("GATEWAY_URL");
const example = env("EXAMPLE_URL");
const adminToken = env("ADMIN_TOKEN");
const shots = env("SHOTS");
const notesScript = env("NOTES_SCRIPT");
const notesDescription = env("NOTES_DESCRIPTION");
mkdirSync(shots, { recursive: true });

const step = (text) => console.log(`-- ${text}`);
// Every main page is audited with axe-core (WCAG 2.x A and AA rules, and best practices): a
// violation of impact serious or critical fails the walk, naming the rule and the elements.
const audited = [];
async function audit(page, name) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const blocking = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const described = blocking
    .map((v) => `${v.id} (${v.impact}): ${v.help}; ${v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join(", ")}`)
    .join("\n  ");
  assert.equal(blocking.length, 0, `accessibility violations on ${name} (${page.url()}):\n  ${described}`);
  audited.push(`${name}: ${violations.length} minor or moderate finding(s)`);
}
const shot = async (page, name) => {
  await audit(page, name);
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
};

// Tab from the top of the page until FOCUSED holds of the focused element, for at most
// LIMIT presses; each focused element must show a visible focus indicator.
async function tabTo(page, focused, what, limit = 40) {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const state = await page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return {
        label: el.getAttribute("aria-label") || el.labels?.[0]?.textContent || el.textContent?.trim() || el.tagName,
        id: el.id,
        tag: el.tagName,
        outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
      };
    });
    assert.ok(state.outline, `the focused ${state.tag} "${state.label}" shows a visible focus outline`);
    if (focused(state)) return state;
  }
  throw new Error(`${what} was not reached with Tab in ${limit} presses`);
}

// An MCP session with the key on SERVER, as a client would open it (initialize, initialized),
// then REQUEST (a method and its params); its status and body.
async function mcpRequest(key, server, method, params) {
  const url = `${gateway}/${server}/mcp`;
  const headers = {
    authorization: `Bearer ${key}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const post = (body, extra = {}) =>
    fetch(url, { method: "POST", headers: { ...headers, ...extra }, body: JSON.stringify(body) });
  const init = await post({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "walk", version: "1" } },
  });
  if (init.status !== 200) return { status: init.status, text: await init.text() };
  await init.text();
  const session = init.headers.get("mcp-session-id");
  const more = { "mcp-protocol-version": "2025-06-18", ...(session ? { "mcp-session-id": session } : {}) };
  await (await post({ jsonrpc: "2.0", method: "notifications/initialized" }, more)).text();
  const answer = await post({ jsonrpc: "2.0", id: 2, method, params }, more);
  return { status: answer.status, text: await answer.text() };
}

// A tool call with the key on the example server, registered as `walk`.
const mcpCall = (key, tool, args) => mcpRequest(key, "walk", "tools/call", { name: tool, arguments: args });

// Repeats ATTEMPT until DONE holds of its answer (a change reaches the gateway within a poll
// of the store), for at most ten seconds; the last answer.
async function until(attempt, done) {
  const deadline = Date.now() + 10000;
  let answer;
  do {
    answer = await attempt();
  } while (!done(answer) && Date.now() < deadline);
  return answer;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in CI containers: Chromium's sandbox needs user namespaces it may not have there.
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: admin });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  step("the accessibility audit finds what it should: a page with an unlabelled field and an image without text");
  await page.setContent('<!DOCTYPE html><html lang="en"><head><title>t</title></head><body><main><img src="data:,"><input type="text"></main></body></html>');
  await assert.rejects(audit(page, "a deliberately inaccessible page"), /image-alt \(critical\)[\s\S]*label \(critical\)|label \(critical\)[\s\S]*image-alt \(critical\)/);

  step("sign in with an admin token");
  await page.goto(`${admin}/console`);
  assert.match(page.url(), /\/console\/sign-in$/);
  await shot(page, "01-sign-in");
  // Signed in with the keyboard alone: Tab to the token field (past the skip link), type, Enter.
  await tabTo(page, (el) => el.tag === "A" && /Skip to content/.test(el.label), "the skip link");
  const tokenField = await tabTo(page, (el) => el.tag === "INPUT" && /Admin token/.test(el.label), "the token field");
  assert.equal(tokenField.tag, "INPUT");
  await page.keyboard.type(adminToken);
  await page.keyboard.press("Enter");
  await page.getByText("Signed in as").waitFor();
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Overview");
  await shot(page, "02-overview");

  step("register the example server and see its tools");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Servers", exact: true }).click();
  await page.getByLabel("Name", { exact: true }).fill("walk");
  await page.getByLabel("URL of its MCP endpoint", { exact: true }).fill(example);
  await page.getByRole("button", { name: "Register and test the connection" }).click();
  await page.getByText("Reachable. It lists").waitFor();
  for (const tool of ["echo", "add"]) {
    await page.locator("section.card li strong", { hasText: new RegExp(`^${tool}$`) }).waitFor();
  }
  await shot(page, "03-server-registered");

  step("register a local program (stdio) and see its tool");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Servers", exact: true }).click();
  await page.getByLabel("Name", { exact: true }).fill("notes");
  await page.getByLabel("Command", { exact: true }).fill("python3");
  await page.getByLabel("Arguments (one per line)", { exact: true }).fill(`-u\n${notesScript}\n${notesDescription}`);
  await page.getByRole("button", { name: "Register and test the connection" }).click();
  await page.getByText("Reachable. It lists 1 tool(s):").waitFor();
  await page.locator("section.card li strong", { hasText: /^lookup$/ }).waitFor();

  step("create a client and grant it echo");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Clients", exact: true }).click();
  await shot(page, "04-clients");
  await tabTo(page, (el) => el.tag === "INPUT" && el.id === "name", "the client form's Name field", 60);
  await page.keyboard.type("walk-client");
  await page.keyboard.press("Tab");
  await page.keyboard.type("the console walk");
  assert.equal(await page.getByLabel("Description (optional)", { exact: true }).inputValue(), "the console walk");
  await page.getByRole("button", { name: "Create client" }).click();
  await page.getByRole("heading", { name: "Client walk-client" }).waitFor();
  await page.getByLabel("Server", { exact: true }).selectOption("walk");
  await page.getByLabel("Tools (comma-separated patterns)", { exact: true }).fill("echo");
  await page.getByRole("button", { name: "Grant" }).click();
  await page.getByText("Granted.").waitFor();

  step("issue a key and copy it");
  await page.getByLabel("Label (optional)", { exact: true }).fill("walk");
  await page.getByRole("button", { name: "Issue API key" }).click();
  const secret = (await page.locator("#secret").textContent()).trim();
  assert.match(secret, /^gth_/);
  await page.getByRole("button", { name: "Copy key" }).click();
  await page.getByRole("button", { name: "Copied" }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, secret, "the copy button put the key on the clipboard");
  await shot(page, "05-key-issued");

  step("call with the key and watch the call arrive in the live audit view");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Audit", exact: true }).click();
  await page.getByLabel("Client", { exact: true }).fill("walk-client");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No event matches.").waitFor();
  await page.getByRole("button", { name: "Pause live view" }).waitFor();
  // The key reaches every replica within a poll of the store: retry until it is known.
  let allowed;
  const deadline = Date.now() + 10000;
  do {
    allowed = await mcpCall(secret, "echo", { text: "hello from the walk" });
  } while (allowed.status === 401 && Date.now() < deadline);
  assert.equal(allowed.status, 200, allowed.text);
  assert.match(allowed.text, /hello from the walk/);
  await page.locator("tbody tr", { hasText: "walk / echo" }).first().waitFor();
  await shot(page, "06-audit-live");

  step("a refused call, and why");
  const refused = await mcpCall(secret, "add", { a: 1, b: 2 });
  assert.equal(refused.status, 403, refused.text);
  const row = page.locator("tbody tr", { hasText: "walk / add" }).first();
  await row.waitFor();
  await row.getByText("tool_not_granted").first().waitFor();
  // Paused, the rows stay as they are while the detail is open.
  await page.getByRole("button", { name: "Pause live view" }).click();
  await page.getByRole("button", { name: "Resume live view" }).waitFor();
  await row.locator("summary").click();
  await row.getByText("refused by rule").waitFor();
  await shot(page, "07-audit-refusal");

  step("a changed tool definition is held, shown as a diff, approved, and then served");
  await page.goto(`${admin}/console/clients/walk-client`);
  await page.getByLabel("Server", { exact: true }).selectOption("notes");
  await page.getByLabel("Tools (comma-separated patterns)", { exact: true }).fill("*");
  await page.getByRole("button", { name: "Grant" }).click();
  await page.getByText("Granted.").waitFor();
  // The first listing pins the definition as approved.
  const listTools = () => mcpRequest(secret, "notes", "tools/list", {});
  const firstList = await until(listTools, (a) => a.status === 200 && a.text.includes("Looks a note up"));
  assert.match(firstList.text, /Looks a note up by its title\./, firstList.text);
  const callLookup = () => mcpRequest(secret, "notes", "tools/call", { name: "lookup", arguments: {} });
  // The change is compared with the approved pin once it is stored and the gateway has loaded it.
  const adminGet = async (path) =>
    (await fetch(`${admin}/admin/api/v1/${path}`, { headers: { authorization: `Bearer ${adminToken}` } })).json();
  const firstPin = "Looks a note up by its title.";
  const pins = await until(
    () => adminGet("tool-pins?server=notes"),
    (p) => p.items?.[0]?.approved_definition?.description === firstPin,
  );
  assert.equal(pins.items?.[0]?.approved_definition?.description, firstPin, JSON.stringify(pins));
  const applied = await until(
    () => adminGet("status"),
    (s) => s.server.applied_generation === s.generation,
  );
  assert.equal(applied.server.applied_generation, applied.generation, JSON.stringify(applied));
  const pinnedCall = await callLookup();
  assert.equal(pinnedCall.status, 200, pinnedCall.text);
  assert.match(pinnedCall.text, /found the note/);
  // The upstream changes the description: the next listing hides the tool and holds the change.
  writeFileSync(notesDescription, "Looks a note up by its title, and also sends it to the archive.");
  const changedList = await listTools();
  assert.equal(changedList.status, 200, changedList.text);
  assert.doesNotMatch(changedList.text, /lookup/, "the changed tool is hidden from the listing");
  const held = await callLookup();
  assert.equal(held.status, 403, held.text);
  assert.match(held.text, /tool_pending_approval/);
  await page.goto(`${admin}/console/servers/notes`);
  const card = page.getByRole("article", { name: "Tool lookup" });
  await card.getByText("changed: held for review").waitFor();
  const diff = card.getByLabel("Changes from the approved definition");
  await diff.locator("span.del", { hasText: "Looks a note up by its title." }).waitFor();
  await diff.locator("span.add", { hasText: "also sends it to the archive" }).waitFor();
  await shot(page, "08-tool-change-diff");
  await card.getByRole("button", { name: "Approve lookup" }).click();
  await page.getByText("Approved: clients now see the new definition.").waitFor();
  await page.getByRole("article", { name: "Tool lookup" }).getByText("approved", { exact: true }).waitFor();
  const approvedCall = await until(callLookup, (a) => a.status === 200);
  assert.equal(approvedCall.status, 200, `the approved tool is served again: ${approvedCall.text}`);
  assert.match(approvedCall.text, /found the note/);
  const approvedList = await listTools();
  assert.match(approvedList.text, /also sends it to the archive/, "clients now see the new definition");

  step("rotate the key with an overlap, then revoke the old one");
  await page.goto(`${admin}/console/clients/walk-client`);
  const rotate = page.getByRole("button", { name: /^Rotate / });
  await rotate.click();
  const rotated = (await page.locator("#secret").textContent()).trim();
  assert.notEqual(rotated, secret);
  const oldId = secret.split("_")[1];
  await page.getByRole("button", { name: `Revoke ${oldId}` }).click();
  await page.getByText("Revoked: the key stops working").waitFor();
  await shot(page, "09-key-rotated-and-revoked");
  // The revoked key is refused once the change reaches the gateway.
  let after;
  const revokedBy = Date.now() + 10000;
  do {
    after = await mcpCall(secret, "echo", { text: "after revocation" });
  } while (after.status !== 401 && Date.now() < revokedBy);
  assert.equal(after.status, 401, "the revoked key is refused");

  step("add a rate limit and see a 429 explained");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Policies", exact: true }).click();
  await page.getByLabel("Id", { exact: true }).fill("walk-burst");
  await page.getByLabel("Kind", { exact: true }).selectOption("rate_limit");
  await page.getByLabel("Client (optional)", { exact: true }).fill("walk-client");
  await page.getByLabel("Specification (JSON)", { exact: true }).fill('{"requests": 1, "period": "1h"}');
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByText("Added walk-burst").waitFor();
  let limited;
  const limitBy = Date.now() + 10000;
  do {
    limited = await mcpCall(rotated, "echo", { text: "again" });
  } while (limited.status !== 429 && Date.now() < limitBy);
  assert.equal(limited.status, 429, `the rate limit refused a call: ${limited.text}`);
  await page.goto(`${admin}/console/audit?client=walk-client&decision=deny`);
  const limitedRow = page.locator("tbody tr", { hasText: "policy:walk-burst" }).first();
  await limitedRow.waitFor();
  await page.getByRole("button", { name: "Pause live view" }).click();
  await limitedRow.locator("summary").click();
  await limitedRow.getByText("429", { exact: true }).waitFor();
  await shot(page, "10-rate-limit-explained");

  step("servers page with the tools seen through Gatehouse");
  await page.goto(`${admin}/console/servers/walk`);
  await page.getByRole("heading", { name: "Tools seen through Gatehouse" }).waitFor();
  await shot(page, "11-server-tools-pinned");

  step("connections: the matrix, and explain a call the grant refuses");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Connections", exact: true }).click();
  await page.getByRole("row", { name: /walk-client/ }).getByText("echo").waitFor();
  await page.getByLabel("Client", { exact: true }).selectOption("walk-client");
  await page.getByLabel("Server", { exact: true }).selectOption("walk");
  await page.getByLabel("Tool", { exact: true }).fill("add");
  await page.getByRole("button", { name: "Explain" }).click();
  await page.getByRole("heading", { name: "Decision: deny" }).waitFor();
  await page.getByText("Decided by").waitFor();
  await shot(page, "12-connections-explain");

  step("a connection's page: its grant, and a guardrail added with a refusal named beside its field");
  await page.getByRole("link", { name: "walk-client on walk: echo" }).click();
  await page.getByRole("heading", { name: "Connection walk-client → walk" }).waitFor();
  await page.getByRole("cell", { name: "walk-burst", exact: true }).waitFor();
  await page.getByLabel("Id", { exact: true }).fill("walk-cards");
  await page.getByLabel("Kind", { exact: true }).selectOption("guardrail");
  await page.getByLabel("Specification (JSON)", { exact: true }).fill('{"action": "block", "detectors": ["cards"]}');
  await page.getByRole("button", { name: "Add", exact: true }).click();
  const specError = page.locator("#policy-spec-error");
  await specError.getByText("unknown detector").waitFor();
  assert.equal(await page.getByLabel("Specification (JSON)", { exact: true }).getAttribute("aria-invalid"), "true");
  await shot(page, "14-connection-refused-field");
  await page.getByLabel("Specification (JSON)", { exact: true }).fill('{"action": "block", "detectors": ["credit_card"]}');
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByText("Added: it applies within a quarter second.").waitFor();
  await page.getByRole("cell", { name: "walk-cards", exact: true }).waitFor();
  await shot(page, "15-connection");

  step("a policy edited on its page");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Policies", exact: true }).click();
  await page.getByRole("link", { name: "Edit walk-burst" }).click();
  await page.getByRole("heading", { name: "Policy walk-burst" }).waitFor();
  await shot(page, "16-policy-edit");
  await page.getByLabel("Specification (JSON)", { exact: true }).fill('{"requests": 100, "period": "1h"}');
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByText("Saved walk-burst").waitFor();
  await page.getByRole("row", { name: /walk-burst/ }).getByText('{"period":"1h","requests":100}').waitFor();

  step("users and groups: a user created and put in a group; a group granted a server");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Users and groups", exact: true }).click();
  await page.getByLabel("Username", { exact: true }).fill("ann");
  await page.getByLabel("Display name (optional)", { exact: true }).fill("Ann");
  await page.getByLabel("Groups (comma-separated, optional)", { exact: true }).fill("eng");
  await page.getByRole("button", { name: "Create user" }).click();
  await page.getByText("Created ann.").waitFor();
  await page.getByLabel("Group", { exact: true }).fill("eng");
  await page.getByLabel("Server", { exact: true }).selectOption("walk");
  await page.getByLabel("Tools (comma-separated patterns)", { exact: true }).fill("echo");
  await page.getByRole("button", { name: "Grant the group" }).click();
  await page.getByText("Granted group eng the server walk.").waitFor();
  await shot(page, "17-users-and-groups");
  await page.getByRole("link", { name: "ann", exact: true }).click();
  await page.getByLabel("Groups (comma-separated)", { exact: true }).fill("eng, ops");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByText("Saved.").waitFor();
  await shot(page, "18-user");

  step("OAuth: an authorization-code client with a redirect URI");
  await page.goto(`${admin}/console/clients/walk-client`);
  await page.getByLabel("Token endpoint authentication", { exact: true }).selectOption("none");
  await page.getByRole("checkbox", { name: /Client credentials/ }).uncheck();
  await page.getByRole("checkbox", { name: /Authorization code/ }).check();
  await page.getByRole("button", { name: "Register", exact: true }).click();
  await page.locator("#oauth-redirect_uris-error").waitFor();
  await page.getByLabel("Redirect URIs (one per line; for authorization code)", { exact: true }).fill("https://walk.example.com/callback");
  await page.getByRole("button", { name: "Register", exact: true }).click();
  await page.getByText("Registered: client id walk-client, authenticating with none (no secret).").waitFor();
  await shot(page, "19-client-oauth");

  step("settings, secrets masked; users; signing keys");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Settings", exact: true }).click();
  await page.getByRole("cell", { name: "admin_listen", exact: true }).waitFor();
  await shot(page, "13-settings");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Users and groups", exact: true }).click();
  await page.getByRole("heading", { name: "Users and groups" }).waitFor();
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Signing keys", exact: true }).click();
  await page.getByRole("heading", { name: "Signing keys", level: 1 }).waitFor();
  await audit(page, "signing-keys");
  await page.goto(`${admin}/console/audit`);
  await audit(page, "audit");
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Overview", exact: true }).click();
  await page.locator("figcaption", { hasText: /\d+ allowed, \d+ refused/ }).waitFor();
  await page.getByRole("heading", { name: "Upstreams" }).waitFor();
  await page.getByRole("link", { name: "walk", exact: true }).waitFor();
  await page.getByRole("button", { name: "Verify the chains now" }).click();
  await page.getByText("The audit trail is intact").waitFor();
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Overview", exact: true }).click();
  await page.getByText(/intact \d+ rows in \d+ chain\(s\), verified/).waitFor();
  await shot(page, "20-overview-traffic");

  step("sign out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/sign-in$/);
  await page.goto(`${admin}/console`);
  assert.match(page.url(), /\/console\/sign-in$/, "signed out: the console asks to sign in");
  console.log(`axe-core: no serious or critical violation on ${audited.length} pages`);
  for (const line of audited) console.log(`  ${line}`);
  console.log("console walk: every step passed");
} finally {
  await browser.close();
}
