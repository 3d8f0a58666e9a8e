"""Enterprise-managed authorization and workload identity, end to end.

A Gatehouse of its own trusts an IdP stand-in (idp.py: PyJWT, RFC 8693 token exchange issuing
ID-JAGs) and two workload platforms (a Kubernetes cluster and GitHub Actions, stand-ins
signing their tokens). Then:

1. Alice signs in at the IdP (an ID token); the Python SDK's `IdentityAssertionOAuthProvider`
   (mcp 2.3.0) gets the ID-JAG through its `assertion_provider` (the token exchange at the IdP)
   and redeems it at Gatehouse; the SDK calls a tool as Alice. The ID-JAG cannot be redeemed
   twice, and one for another authorization server is refused.
2. A pod's service-account token is redeemed with the jwt-bearer grant (plain HTTP: no SDK
   sends a foreign grant assertion), and the SDK calls a tool with the token. Tokens of an
   untrusted issuer or an unmapped service account are refused.
3. The SDK's `PrivateKeyJWTOAuthProvider` authenticates as client `ci` with a GitHub Actions
   token from its `assertion_provider` (client_credentials + client assertion), and calls a tool;
   so does the TypeScript SDK's `StaticPrivateKeyJwtProvider` with a prebuilt one (ts/workload.mjs).

Finally no secret, ID token, ID-JAG or workload token appears in Gatehouse's output.

Environment: GATEHOUSE_BIN, EXAMPLE_URL (the example MCP server), WORK (a scratch dir), NODE
(for the TypeScript client; e2e/ts/node_modules installed).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time

import anyio
import httpx2
import jwt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oauth"))
from idp import ID_JAG, ID_TOKEN, TOKEN_EXCHANGE, Standin  # noqa: E402
from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider  # noqa: E402
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider  # noqa: E402
from support import MemoryStorage, connect, text_of  # noqa: E402

GATEHOUSE_BIN = os.environ["GATEHOUSE_BIN"]
EXAMPLE_URL = os.environ["EXAMPLE_URL"]
WORK = os.environ["WORK"]
NODE = os.environ.get("NODE", "node")
TS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ts")
TS_V2_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ts-v2")
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
procs: list[subprocess.Popen] = []
secrets_seen: list[str] = []


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


async def call_echo(url: str, http: httpx2.AsyncClient, text: str) -> str:
    async with connect(url, http) as client:
        result = await client.call_tool("echo", {"text": text})
        assert not result.is_error, result
        return text_of(result)


async def raw_call(url: str, token: str, tool: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": {"a": 1, "b": 2},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}}
    async with httpx2.AsyncClient(timeout=15, trust_env=False) as http:
        response = await http.post(url, json=body, headers={
            "Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool})
        return response.status_code


async def main() -> None:
    port = free_port()
    gatehouse = f"http://127.0.0.1:{port}"
    resource = f"{gatehouse}/demo/mcp"
    idp_secret = secrets.token_urlsafe(24)
    alice_password = secrets.token_urlsafe(18)
    idp = Standin(client_id="notebook-at-idp", client_secret=idp_secret, ras_issuer=gatehouse,
                  resources=[resource], ras_client_id="notebook", users={
                      "alice": {"password": alice_password, "sub": "00u-alice", "email": "alice@corp.example",
                                "groups": ["analysts"]}})
    secrets_seen.extend([idp_secret, alice_password])

    data = os.path.join(WORK, "data")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(WORK, "federation.toml")
    with open(config, "w") as f:
        f.write(f"""listen = "127.0.0.1:{port}"
public_url = "{gatehouse}"
[oauth]
[[oauth.providers]]
name = "corp"
issuer = "{idp.issuer}"
client_id = "gatehouse"
client_secret_env = "E2E_CORP_SECRET"
groups_claim = "groups"
accept_id_jag = true

[[oauth.workload_issuers]]
name = "cluster"
issuer = "https://kubernetes.default.svc.cluster.local"
jwks_uri = "{idp.issuer}/cluster/jwks"
audience = "gatehouse"
rules = [{{ subject = "system:serviceaccount:reporting:nightly", client = "reporter" }}]

[[oauth.workload_issuers]]
name = "github"
issuer = "https://token.actions.githubusercontent.com"
jwks_uri = "{idp.issuer}/ci/jwks"
audience = "{gatehouse}"
rules = [{{ subject = "repo:acme/tools:*", claims = {{ repository = "acme/tools", ref = "refs/heads/main" }}, client = "ci" }}]
""")
    env = dict(os.environ, E2E_CORP_SECRET="unused-by-this-test", GATEHOUSE_LOG__FILTER="info")

    def gh(*args: str) -> str:
        out = subprocess.run([GATEHOUSE_BIN, "--config", config, "--data-dir", data, *args],
                             env=env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise SystemExit(f"gatehouse {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    gh("servers", "add", "demo", "--url", EXAMPLE_URL)
    gh("groups", "grant", "analysts", "--server", "demo", "--tools", "echo")
    gh("clients", "create", "notebook")
    registered = json.loads(gh("--output", "json", "clients", "oauth", "notebook", "--grant", GRANT,
                               "--auth-method", "client_secret_basic"))
    notebook_secret = registered["client_secret"]
    secrets_seen.append(notebook_secret)
    for client in ("reporter", "ci"):
        gh("clients", "create", client)
        gh("connections", "grant", "--client", client, "--server", "demo", "--tools", "echo")

    log = open(os.path.join(WORK, "gatehouse.log"), "w")
    server = subprocess.Popen([GATEHOUSE_BIN, "--config", config, "--data-dir", data, "serve"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append(server)
    wait_http(f"{gatehouse}/healthz", server, "gatehouse")

    async with httpx2.AsyncClient(timeout=15, trust_env=False) as raw:
        metadata = (await raw.get(f"{gatehouse}/.well-known/oauth-authorization-server")).json()
        check(GRANT in metadata["grant_types_supported"]
              and metadata.get("authorization_grant_profiles_supported") == ["urn:ietf:params:oauth:grant-profile:id-jag"],
              "the metadata advertises the jwt-bearer grant and the ID-JAG profile")

        # 1. Enterprise-managed authorization.
        signed_in = await raw.post(f"{idp.issuer}/token", auth=("notebook-at-idp", idp_secret),
                                   data={"grant_type": "password", "username": "alice", "password": alice_password})
        id_token = signed_in.json()["id_token"]
        secrets_seen.append(id_token)

        async def exchange(audience: str, resource: str) -> str:
            answer = await raw.post(f"{idp.issuer}/token", auth=("notebook-at-idp", idp_secret), data={
                "grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG, "audience": audience,
                "resource": resource, "subject_token": id_token, "subject_token_type": ID_TOKEN})
            assert answer.status_code == 200, answer.text
            assert answer.json()["issued_token_type"] == ID_JAG, answer.text
            return answer.json()["access_token"]

        storage = MemoryStorage()
        provider = IdentityAssertionOAuthProvider(
            server_url=resource, storage=storage, client_id="notebook", client_secret=notebook_secret,
            token_endpoint_auth_method="client_secret_basic", issuer=gatehouse, assertion_provider=exchange)
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            echoed = await call_echo(resource, http, "as alice")
        check(echoed == "as alice", "the SDK redeemed the ID-JAG and called a tool as alice")
        check(len(idp.issued) == 1, "one token exchange at the IdP")
        secrets_seen.extend(idp.issued)
        token = storage.tokens.access_token
        check(storage.tokens.refresh_token is None, "no refresh token for the ID-JAG grant")
        keys = jwt.PyJWKClient(f"{gatehouse}/oauth/jwks.json")
        claims = jwt.decode(token, keys.get_signing_key_from_jwt(token).key,
                            algorithms=["EdDSA", "ES256", "RS256"], audience=resource, issuer=gatehouse)
        users = json.loads(gh("--output", "json", "users", "list"))
        alice = [u for u in users if u["idp"] == "corp" and u["idp_subject"] == "00u-alice"]
        check(len(alice) == 1 and claims["sub"] == alice[0]["id"] and claims["client_id"] == "notebook",
              "the token (checked by PyJWT) acts for the linked user through the notebook")
        check(await raw_call(resource, token, "add") == 403, "and reaches only what alice's groups grant")
        replay = await raw.post(f"{gatehouse}/oauth/token", auth=("notebook", notebook_secret), data={
            "grant_type": GRANT, "assertion": idp.issued[0]})
        check(replay.status_code == 400 and replay.json()["error"] == "invalid_grant",
              "the same ID-JAG redeemed again is refused")
        elsewhere = idp.idp_key.sign({**jwt.decode(idp.issued[0], options={"verify_signature": False}),
                                      "aud": "https://as.elsewhere.example", "jti": secrets.token_urlsafe(8)},
                                     typ="oauth-id-jag+jwt")
        refused = await raw.post(f"{gatehouse}/oauth/token", auth=("notebook", notebook_secret), data={
            "grant_type": GRANT, "assertion": elsewhere})
        check(refused.status_code == 400 and refused.json()["error"] == "invalid_grant",
              "an ID-JAG for another authorization server is refused")

        # The TypeScript SDK's own EMA provider (v2 client package): CrossAppAccessProvider,
        # its ID-JAG from the SDK's token exchange helper at the IdP.
        exchanged = len(idp.issued)
        ts = subprocess.run([NODE, os.path.join(TS_V2_DIR, "cross_app.mjs")], cwd=TS_V2_DIR, capture_output=True,
                            text=True, timeout=120, env=dict(
                                os.environ, MCP_URL=resource, ISSUER=gatehouse, IDP_URL=idp.issuer,
                                ID_TOKEN=id_token, IDP_CLIENT_ID="notebook-at-idp", IDP_CLIENT_SECRET=idp_secret,
                                CLIENT_ID="notebook", CLIENT_SECRET=notebook_secret))
        secrets_seen.extend(idp.issued)
        check(ts.returncode == 0 and ts.stdout.splitlines()[:1] == ["as alice (ts)"]
              and len(idp.issued) == exchanged + 1,
              f"the TypeScript SDK's CrossAppAccessProvider redeemed an ID-JAG and called a tool as alice "
              f"({ts.stdout.strip()} {ts.stderr.strip()[:1200]})")

        # 2. A Kubernetes pod's service-account token as the grant.
        sa_token = idp.service_account_token("reporting", "nightly", "gatehouse")
        secrets_seen.append(sa_token)
        answer = await raw.post(f"{gatehouse}/oauth/token",
                                data={"grant_type": GRANT, "assertion": sa_token, "resource": resource})
        check(answer.status_code == 200, f"the service-account token is redeemed (HTTP {answer.status_code})")
        pod_token = answer.json()["access_token"]
        async with httpx2.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {pod_token}"}) as http:
            check(await call_echo(resource, http, "from the pod") == "from the pod",
                  "the SDK calls a tool with the pod's token")
        for what, assertion in [
            ("another service account", idp.service_account_token("reporting", "intruder", "gatehouse")),
            ("another audience", idp.service_account_token("reporting", "nightly", "https://kubernetes.default.svc")),
            ("an untrusted issuer", idp.service_account_token("reporting", "nightly", "gatehouse",
                                                              iss="https://cluster.evil.example")),
            ("the same token again", sa_token),
        ]:
            answer = await raw.post(f"{gatehouse}/oauth/token",
                                    data={"grant_type": GRANT, "assertion": assertion, "resource": resource})
            check(answer.status_code == 400 and answer.json()["error"] == "invalid_grant",
                  f"{what}: invalid_grant ({answer.json().get('error_description')})")

    # 3. A CI job: the SDK's private_key_jwt provider, its assertion the platform's token.
    ci_tokens: list[str] = []

    async def github_token(audience: str) -> str:
        ci_tokens.append(idp.ci_token(audience))
        return ci_tokens[-1]

    storage = MemoryStorage()
    provider = PrivateKeyJWTOAuthProvider(server_url=resource, storage=storage, client_id="ci",
                                          assertion_provider=github_token, issuer=gatehouse)
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        echoed = await call_echo(resource, http, "from ci")
    check(echoed == "from ci" and len(ci_tokens) == 1,
          "the SDK authenticated as ci with a GitHub Actions token and called a tool")
    ci_claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    check(ci_claims["client_id"] == "ci", "the token is ci's")
    secrets_seen.extend(ci_tokens)

    # The TypeScript SDK's StaticPrivateKeyJwtProvider with a prebuilt platform token.
    ts_token = idp.ci_token(gatehouse)
    secrets_seen.append(ts_token)
    ts = subprocess.run([NODE, os.path.join(TS_DIR, "workload.mjs")], cwd=TS_DIR, capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, MCP_URL=resource, ISSUER=gatehouse, CLIENT_ID="ci",
                                              ASSERTION=ts_token))
    check(ts.returncode == 0 and ts.stdout.strip() == "from the ts workload",
          f"the TypeScript SDK authenticated as ci with a GitHub Actions token ({ts.stderr.strip()[-300:]})")

    server.terminate()
    server.wait(timeout=30)
    log.close()
    output = open(os.path.join(WORK, "gatehouse.log")).read()
    leaked = [s[:12] + "…" for s in secrets_seen if s in output]
    check(not leaked, f"no secret, ID token, ID-JAG or workload token in Gatehouse's output {leaked}")
    idp.close()


if __name__ == "__main__":
    try:
        anyio.run(main)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
