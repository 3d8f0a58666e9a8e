"""Sign-in through an upstream OpenID Connect provider (oidc-provider), end to end; and the
same provider as a trusted external authorization server whose client-credentials tokens the
gateway accepts.

A user who exists nowhere in Gatehouse signs in at the provider; Gatehouse validates the ID
token, creates the user with groups mapped from the `groups` claim, shows consent, and the
agent's token reaches what the mapped group may reach. The browser is an httpx client with a
cookie jar that follows redirects by hand.

Environment: GATEHOUSE_BIN, EXAMPLE_URL (the example MCP server), NODE, WORK (a scratch dir),
PROVIDER_DIR (this directory, with node_modules installed).
"""

import base64
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse

try:
    import httpx
except ImportError:  # the `mcp` SDK of e2e/.venv brings httpx2 under that name
    import httpx2 as httpx

GATEHOUSE_BIN = os.environ["GATEHOUSE_BIN"]
EXAMPLE_URL = os.environ["EXAMPLE_URL"]
NODE = os.environ.get("NODE", "node")
WORK = os.environ["WORK"]
PROVIDER_DIR = os.environ["PROVIDER_DIR"]
REDIRECT = "http://127.0.0.1:9/cb"
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited during startup")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on {url} within {seconds} s")


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print(f"ok - {message}")


def main():
    gh_port, idp_port = free_port(), free_port()
    gatehouse = f"http://127.0.0.1:{gh_port}"
    issuer = f"http://127.0.0.1:{idp_port}"
    client_secret = secrets.token_urlsafe(32)
    data = os.path.join(WORK, "upstream-oidc-data")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(WORK, "upstream-oidc.toml")
    with open(config, "w") as f:
        f.write(f"""listen = "127.0.0.1:{gh_port}"
public_url = "{gatehouse}"
[oauth]
[[oauth.providers]]
name = "corp"
display_name = "Corp SSO"
issuer = "{issuer}"
client_id = "gatehouse"
client_secret_env = "E2E_CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]
groups_claim = "groups"
group_map = {{ "mcp-analysts" = "analysts" }}
[[oauth.trusted_issuers]]
name = "idp"
issuer = "{issuer}"
servers = ["demo"]
client_map = {{ "svc" = "svc-app" }}
""")
    env = dict(os.environ, E2E_CORP_SECRET=client_secret, GATEHOUSE_LOG__FILTER="warn")

    def gh(*args, stdin=None):
        out = subprocess.run([GATEHOUSE_BIN, "--config", config, "--data-dir", data, *args],
                             env=env, input=stdin, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise SystemExit(f"gatehouse {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    gh("servers", "add", "demo", "--url", EXAMPLE_URL)
    gh("clients", "create", "agent")
    gh("clients", "oauth", "agent", "--grant", "authorization_code", "--auth-method", "none",
       "--redirect-uri", REDIRECT)
    gh("groups", "grant", "analysts", "--server", "demo", "--tools", "echo")
    gh("clients", "create", "svc-app")
    gh("connections", "grant", "--client", "svc-app", "--server", "demo", "--tools", "echo")

    idp = subprocess.Popen([NODE, os.path.join(PROVIDER_DIR, "provider.mjs")], cwd=PROVIDER_DIR,
                           env=dict(os.environ, ISSUER=issuer, GATEHOUSE=gatehouse,
                                    CLIENT_SECRET=client_secret),
                           stdout=open(os.path.join(WORK, "idp.log"), "w"), stderr=subprocess.STDOUT)
    procs.append(idp)
    wait_http(f"{issuer}/.well-known/openid-configuration", idp, "oidc-provider")
    server = subprocess.Popen([GATEHOUSE_BIN, "--config", config, "--data-dir", data, "serve"],
                              env=env, stdout=open(os.path.join(WORK, "gh-oidc.log"), "w"),
                              stderr=subprocess.STDOUT)
    procs.append(server)
    wait_http(f"{gatehouse}/healthz", server, "gatehouse")

    resource = f"{gatehouse}/demo/mcp"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": "agent", "redirect_uri": REDIRECT,
        "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
        "resource": resource,
    })
    browser = httpx.Client(timeout=10, follow_redirects=False)
    response = browser.get(f"{gatehouse}/oauth/authorize?{query}")
    check(response.status_code == 303 and "/oauth/login?req=" in response.headers["location"],
          "an unknown browser is sent to sign in")
    login_page = browser.get(urllib.parse.urljoin(gatehouse, response.headers["location"]))
    link = re.search(r'href="(/oauth/login/corp\?req=[^"]+)"', login_page.text)
    check(link is not None and "Sign in with Corp SSO" in login_page.text,
          "the sign-in page offers the upstream provider")
    url = urllib.parse.urljoin(gatehouse, link.group(1).replace("&amp;", "&"))
    hops = 0
    while True:
        response = browser.get(url)
        location = response.headers.get("location")
        if response.status_code not in (302, 303) or location is None:
            break
        url = urllib.parse.urljoin(url, location)
        hops += 1
        if hops > 15:
            raise AssertionError("too many redirects")
        if url.startswith(f"{gatehouse}/oauth/authorize?req="):
            response = browser.get(url)
            break
    check(response.status_code == 200 and "Allow" in response.text and "mcp:demo" in response.text,
          f"after the provider ({hops} redirects) Gatehouse shows consent")
    req = re.search(r'name="req" value="([^"]+)"', response.text).group(1)
    csrf = re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)
    response = browser.post(f"{gatehouse}/oauth/authorize",
                            data={"req": req, "csrf": csrf, "decision": "approve"})
    callback = urllib.parse.urlparse(response.headers["location"])
    params = urllib.parse.parse_qs(callback.query)
    check(response.status_code == 303 and params["state"] == [state] and params["iss"] == [gatehouse],
          "approval redirects to the client with code, state and iss")
    token = httpx.post(f"{gatehouse}/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"][0], "client_id": "agent",
        "redirect_uri": REDIRECT, "code_verifier": verifier,
    }, timeout=10)
    check(token.status_code == 200, f"the code is redeemed ({token.status_code})")
    access = token.json()["access_token"]
    claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))

    users = json.loads(gh("--output", "json", "users", "list"))
    carol = [u for u in users if u["idp"] == "corp"]
    check(len(carol) == 1 and carol[0]["idp_subject"] == "carol-0001"
          and carol[0]["username"] == "carol@example.test" and carol[0]["groups"] == ["analysts"],
          "the federated user was created with the mapped group only")
    check(claims["sub"] == carol[0]["id"] and claims["client_id"] == "agent",
          "the token names the user and the agent")

    def call(tool, bearer=None):
        # A stateless (2026-07-28) call: no session to set up first.
        arguments = {"text": "hi"} if tool == "echo" else {"a": 1, "b": 2}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}}
        response = httpx.post(resource, json=body, timeout=10, headers={
            "Authorization": f"Bearer {bearer or access}", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool})
        print(f"  tools/call {tool}: HTTP {response.status_code}")
        return response

    check(call("echo").status_code == 200, "the agent calls a tool the user's group may use")
    check(call("add").status_code == 403, "and not one it may not")

    # The provider as an external authorization server: its client-credentials token (ES256,
    # aud = the demo server) is accepted for the Gatehouse client it maps to.
    prm = httpx.get(f"{gatehouse}/.well-known/oauth-protected-resource/demo/mcp", timeout=10).json()
    check(prm["authorization_servers"] == [gatehouse, issuer],
          "the server's metadata names Gatehouse and the trusted issuer")
    external = httpx.post(f"{issuer}/token", auth=("svc", client_secret), timeout=10, data={
        "grant_type": "client_credentials", "resource": resource, "scope": "mcp:demo"})
    check(external.status_code == 200, f"the external server issues a token ({external.status_code})")
    ext_token = external.json()["access_token"]
    check(call("echo", ext_token).status_code == 200,
          "the gateway accepts the external token within svc-app's connection")
    check(call("add", ext_token).status_code == 403, "and refuses what the connection lacks")
    forged = ext_token[:-4] + ("AAAA" if not ext_token.endswith("AAAA") else "BBBB")
    check(call("echo", forged).status_code == 401, "a tampered external token is refused")
    server.terminate()
    server.wait(timeout=10)
    with open(os.path.join(WORK, "gh-oidc.log")) as log:
        text = log.read()
    check(client_secret not in text and access not in text,
          "neither the provider's client secret nor the token reached Gatehouse's log")
    print("upstream OIDC sign-in: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"not ok - {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
