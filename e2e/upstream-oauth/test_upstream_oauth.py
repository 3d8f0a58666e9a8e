"""Per-user delegated upstream tokens, end to end, with the Python SDK client.

A SaaS stand-in (saas.py: its own authorization server with code + PKCE, refresh and
revocation; an MCP server that reports whose token a call carried) sits behind a Gatehouse of
its own as server `saas` with kind `per_user`. For Ann and then Bob:

1. The person authorizes their agent at Gatehouse (the SDK's OAuthClientProvider, the scripted
   browser signing in with the person's password: that browser now holds their Gatehouse
   session).
2. The agent connects: Gatehouse answers with the URL elicitation (-32042), which the SDK
   raises as `UrlElicitationRequiredError` carrying the link.
3. The test plays the person's browser: the link, the SaaS's authorization page (signing in
   there as the person), the callback.
4. The agent connects again and `whoami` answers as that person.

Then each person's calls carry their own token only; an operator's revocation tells the SaaS
and Ann is asked again, while Bob goes on; the TypeScript SDK client (ts/upstream_whoami.mjs)
gets the same URL elicitation for Ann, and after she connects again its retried call runs as
her. Two more SaaS stand-ins are added with `--per-user-discover` and nothing else: Gatehouse
registers at one dynamically and uses its client metadata document at the other, and Ann
connects through each. A fourth takes RFC 8693 token exchange from Gatehouse (server added with
`--token-exchange`; token_exchange.py): Ann and Bob reach it as themselves without a consent
step, the audit names each call's person, and the stand-in refuses tampered, wrong-audience and
replayed subject tokens. No SaaS token or secret appears in Gatehouse's output.

Environment: GATEHOUSE_BIN, WORK (a scratch dir), NODE (e2e/ts/node_modules installed).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "oauth"))
sys.path.insert(0, here)
from browser import authorize  # noqa: E402
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider  # noqa: E402
from mcp.shared.auth import OAuthClientMetadata  # noqa: E402
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError  # noqa: E402
import token_exchange  # noqa: E402
from saas import Saas  # noqa: E402
from support import MemoryStorage, connect, text_of, unwrap  # noqa: E402

GATEHOUSE_BIN = os.environ["GATEHOUSE_BIN"]
WORK = os.environ["WORK"]
NODE = os.environ.get("NODE", "node")
TS_DIR = os.path.join(here, "..", "ts")
procs: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
    print(f"ok - {message}")


def wait_http(url: str, proc: subprocess.Popen, what: str, seconds: int = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited during startup")
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on {url} within {seconds} s")


class Person:
    """A person: their password at Gatehouse, their browser (cookie jar) and their agent."""

    def __init__(self, name: str, password: str, url: str) -> None:
        self.name = name
        self.password = password
        self.url = url
        self.browser = httpx2.AsyncClient(follow_redirects=False, timeout=15, trust_env=False)
        self.callback: str | None = None
        self.storage = MemoryStorage()
        self.provider = OAuthClientProvider(
            server_url=url,
            client_metadata=OAuthClientMetadata(
                redirect_uris=[f"http://127.0.0.1:{free_port()}/callback"], token_endpoint_auth_method="none"),
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
        )

    async def redirect_handler(self, url: str) -> None:
        self.callback = await authorize(url, self.name, self.password, client=self.browser)

    async def callback_handler(self) -> AuthorizationCodeResult:
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.callback or "").query).items()}
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def whoami(self) -> str:
        """`whoami` through Gatehouse, or the elicitation link when Gatehouse asks for one."""
        async with httpx2.AsyncClient(auth=self.provider, timeout=30, trust_env=False) as http:
            try:
                async with connect(self.url, http, mode="legacy") as client:
                    return text_of(await client.call_tool("whoami", {}))
            except Exception as err:  # noqa: BLE001 - the SDK's error, unwrapped below
                leaf = unwrap(err)
                if isinstance(leaf, MCPError) and leaf.code == -32042:
                    # The SDK's own reading of the error's data.
                    (elicitation,) = UrlElicitationRequiredError.from_error(leaf.error).elicitations
                    check(elicitation.mode == "url", f"{self.name}: a URL-mode elicitation")
                    return f"link:{elicitation.url}"
                raise

    def whoami_ts(self) -> str:
        """`whoami` with the TypeScript SDK client and the person's Gatehouse access token."""
        out = subprocess.run([NODE, os.path.join(TS_DIR, "upstream_whoami.mjs")], cwd=TS_DIR, text=True,
                             capture_output=True, timeout=120,
                             env=dict(os.environ, MCP_URL=self.url, TOKEN=self.storage.tokens.access_token))
        check(out.returncode == 0, f"{self.name}: the TypeScript client ran ({out.stderr.strip()[:800]})")
        return out.stdout.strip()

    async def open_link(self, link: str, saas_login: str) -> int:
        """The person's browser: the link, the SaaS's sign-in, the callback; its status."""
        to_saas = await self.browser.get(link)
        check(to_saas.status_code == 303, f"{self.name}: the link sends the browser to the SaaS")
        at_saas = await self.browser.get(to_saas.headers["location"] + f"&login={saas_login}")
        check(at_saas.status_code == 302, f"{self.name}: the SaaS redirects back with a code")
        done = await self.browser.get(at_saas.headers["location"])
        return done.status_code


async def main() -> None:
    client_secret = secrets.token_urlsafe(24)
    saas = Saas("gatehouse-at-saas", client_secret)
    port = free_port()
    gatehouse = f"http://127.0.0.1:{port}"
    data = os.path.join(WORK, "data")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(WORK, "upstream-oauth.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\npublic_url = "{gatehouse}"\n[oauth]\nregistration = "open"\n')
    env = dict(os.environ, SAAS_CLIENT_SECRET=client_secret, GATEHOUSE_LOG__FILTER="info")

    def gh(*args: str, stdin: str | None = None) -> str:
        out = subprocess.run([GATEHOUSE_BIN, "--config", config, "--data-dir", data, *args],
                             env=env, capture_output=True, text=True, timeout=60, input=stdin)
        if out.returncode != 0:
            raise SystemExit(f"gatehouse {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    gh("servers", "add", "saas", "--url", f"{saas.url}/mcp",
       "--authorization-endpoint", f"{saas.url}/authorize", "--token-endpoint", f"{saas.url}/token",
       "--revocation-endpoint", f"{saas.url}/revoke", "--client-id", saas.client_id,
       "--client-secret-env", "SAAS_CLIENT_SECRET", "--auth-method", "client_secret_post", "--scope", "files")
    gh("groups", "grant", "staff", "--server", "saas", "--tools", "whoami")
    passwords = {name: secrets.token_urlsafe(18) for name in ("ann", "bob")}
    for name, password in passwords.items():
        gh("users", "add", name, "--groups", "staff", "--password-stdin", stdin=password + "\n")

    log_path = os.path.join(WORK, "gatehouse.log")
    log = open(log_path, "w")
    server = subprocess.Popen([GATEHOUSE_BIN, "--config", config, "--data-dir", data, "serve"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append(server)
    wait_http(f"{gatehouse}/healthz", server, "gatehouse")

    url = f"{gatehouse}/saas/mcp"
    people = {name: Person(name, password, url) for name, password in passwords.items()}
    for name, person in people.items():
        before = len(saas.calls)
        first = await person.whoami()
        check(first.startswith(f"link:{gatehouse}/oauth/upstream/connect?ticket="),
              f"{name}'s agent gets the URL elicitation (-32042) before reaching the SaaS")
        check(len(saas.calls) == before, f"{name}: the SaaS was not called")
        if name == "bob":
            # Ann's browser (signed in to Gatehouse as Ann) cannot use Bob's link.
            refused = await people["ann"].browser.get(first.removeprefix("link:"))
            check(refused.status_code == 403, "Bob's link in Ann's browser is refused")
        status = await person.open_link(first.removeprefix("link:"), name)
        check(status == 200, f"{name} connected their SaaS account (callback HTTP {status})")
        check(await person.whoami() == f"user:{name}", f"{name}'s agent reaches the SaaS as {name}")

    for name, person in people.items():
        check(await person.whoami() == f"user:{name}", f"{name} again: still their own token")
    check(saas.calls == ["ann", "bob", "ann", "bob"], f"the SaaS saw each person's own token ({saas.calls})")

    gh("users", "upstream-grants", "revoke", "ann", "saas")
    check(len(saas.revoked) == 1 and saas.revoked[0].startswith("saas-rt-"),
          "the operator's revocation told the SaaS (refresh token)")
    again = await people["ann"].whoami()
    check(again.startswith("link:"), "after the revocation Ann is asked to connect again")
    # The TypeScript SDK client completes the same step for Ann.
    ts_first = people["ann"].whoami_ts()
    check(ts_first.startswith(f"link:{gatehouse}/oauth/upstream/connect?ticket="),
          "the TypeScript SDK raises UrlElicitationRequiredError with the link")
    status = await people["ann"].open_link(ts_first.removeprefix("link:"), "ann")
    check(status == 200, f"ann connected again (callback HTTP {status})")
    check(people["ann"].whoami_ts() == "user:ann", "the TypeScript client's retried call runs as ann")
    check(await people["bob"].whoami() == "user:bob", "Bob's grant stays")
    listed = json.loads(gh("--output", "json", "users", "upstream-grants", "list"))
    check(sorted(g["user"] for g in listed) == ["ann", "bob"], f"both grants are listed again ({listed})")

    # Registration found by Gatehouse: given only the MCP URL, it reads the resource metadata,
    # the authorization server's metadata, and registers by RFC 7591 (one SaaS) or uses its
    # client metadata document (the other, which fetches it at authorization).
    discovered = {"dynamic": Saas("unused", secrets.token_urlsafe(12), registration=True),
                  "metadata_document": Saas("unused", secrets.token_urlsafe(12), metadata_document=True)}
    for registration, other in discovered.items():
        name = f"saas-{registration.replace('_', '-')}"
        shown = json.loads(gh("--output", "json", "servers", "add", name, "--url", f"{other.url}/mcp",
                              "--per-user-discover"))
        shown = shown[0] if isinstance(shown, list) else shown
        check(shown["upstream_auth"]["registration"] == registration,
              f"{name}: Gatehouse found the authorization server and chose {registration}")
        check(shown["upstream_auth"]["issuer"] == other.url, f"{name}: the issuer is the SaaS's")
        gh("groups", "grant", "staff", "--server", name, "--tools", "whoami")
        ann = Person("ann", passwords["ann"], f"{gatehouse}/{name}/mcp")
        first = await ann.whoami()
        check(first.startswith("link:"), f"{name}: Ann is asked to connect")
        status = await ann.open_link(first.removeprefix("link:"), "ann")
        check(status == 200, f"{name}: Ann connected (callback HTTP {status})")
        check(await ann.whoami() == "user:ann", f"{name}: Ann's agent reaches the SaaS as Ann")
        await ann.browser.aclose()
    check(len(discovered["dynamic"].registrations) == 1, "registered once")
    check(discovered["metadata_document"].documents_fetched == [f"{gatehouse}/oauth/upstream/client-metadata.json"],
          "the SaaS read Gatehouse's client metadata document")
    registered_secrets = [c[0] for o in discovered.values() for c in o.clients.values() if c[0]]

    # RFC 8693 token exchange per person (token_exchange.py).
    exchange_agents: dict[str, Person] = {}

    async def whoami_at(name: str, at: str) -> str:
        agent = exchange_agents.setdefault(name, Person(name, passwords[name], at))
        return await agent.whoami()

    exchange_secrets = await token_exchange.run(gatehouse=gatehouse, work=WORK, gh=gh, check=check,
                                                whoami=whoami_at)
    for agent in exchange_agents.values():
        await agent.browser.aclose()

    server.terminate()
    server.wait(timeout=30)
    log.close()
    output = open(log_path).read()
    leaked = [t for t in [client_secret, *saas.revoked, *saas.access, *saas.refresh, *registered_secrets,
                          *exchange_secrets]
              if t in output]
    check(not leaked, "no SaaS token or secret in Gatehouse's output")
    for person in people.values():
        await person.browser.aclose()


if __name__ == "__main__":
    try:
        anyio.run(main)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
