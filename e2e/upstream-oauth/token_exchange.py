"""RFC 8693 token exchange per person, end to end (run by test_upstream_oauth.py).

A SaaS stand-in that trusts Gatehouse as an identity provider (saas.py with `trusted_issuer`)
sits behind the same Gatehouse as server `saas-exchange`, added with `--token-exchange`. Ann's
and Bob's agents (each authorized at Gatehouse through their own browser sign-in) call
`whoami`: Gatehouse exchanges its signed assertion of the person for an upstream token, so
each reaches the SaaS as themselves with no consent step. The test then shows that:

- each person's calls carried only the token issued for them, and the two tokens differ;
- each exchange's subject token named the person by their Gatehouse user id, for this token
  endpoint, from Gatehouse's issuer; and its `jti` is the audit `request_id` of the call that
  needed the token;
- the audit trail names the person each call to `saas-exchange` ran as;
- directly at the stand-in: a tampered subject token, one for another audience, a replayed
  one, a wrong `subject_token_type`, another resource, a client not allowed to exchange and a
  wrong client secret are each refused with their RFC 8693 / RFC 6749 error.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable

import httpx2

from saas import JWT_TYPE, TOKEN_EXCHANGE, Saas

Check = Callable[[bool, str], None]


def tampered(token: str, **claims: str) -> str:
    """The token with `claims` changed in its payload and the original signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


async def run(*, gatehouse: str, work: str, gh: Callable[..., str], check: Check,
              whoami: Callable[[str, str], Awaitable[str]]) -> list[str]:
    """The checks above; returns the secret and tokens that must not appear in Gatehouse's log.

    `whoami(person, url)` calls the tool through Gatehouse as that person's agent."""
    secret = secrets.token_urlsafe(24)
    saas = Saas("gatehouse-exchange", secret, trusted_issuer=gatehouse)
    secret_file = os.path.join(work, "exchange-secret")
    with open(secret_file, "w") as f:
        f.write(secret)
    gh("servers", "add", "saas-exchange", "--url", f"{saas.url}/mcp", "--token-exchange",
       "--token-endpoint", f"{saas.url}/token", "--client-id", saas.client_id,
       "--client-secret-file", secret_file, "--auth-method", "client_secret_post",
       "--scope", "files", "--resource", f"{saas.url}/mcp")
    gh("groups", "grant", "staff", "--server", "saas-exchange", "--tools", "whoami")
    url = f"{gatehouse}/saas-exchange/mcp"

    for name in ("ann", "bob"):
        check(await whoami(name, url) == f"user:{name}",
              f"exchange: {name}'s agent reaches the SaaS as {name}, with no consent step")
    for name in ("ann", "bob"):
        check(await whoami(name, url) == f"user:{name}", f"exchange: {name} again")

    issued = {claims["preferred_username"]: access for claims, access, _ in saas.exchanges}
    check(sorted(c["preferred_username"] for c, _, _ in saas.exchanges) == ["ann", "bob"],
          f"exchange: one exchange per person, the second calls reused it ({len(saas.exchanges)})")
    check(issued["ann"] != issued["bob"], "exchange: the two people got different tokens")
    seen = {(login, token) for login, token in saas.calls_with_tokens}
    check(seen == {("ann", issued["ann"]), ("bob", issued["bob"])},
          "exchange: every call carried the token issued for its own person, never the other's")

    users = {u["username"]: u["id"] for u in json.loads(gh("--output", "json", "users", "list"))}
    for claims, _, _ in saas.exchanges:
        person = claims["preferred_username"]
        check(claims["sub"] == users[person] and claims["iss"] == gatehouse
              and claims["aud"] == f"{saas.url}/token",
              f"exchange: {person}'s subject token names them (sub {claims['sub']}) for this token endpoint")

    # The audit trail: which person each call ran as, and the call whose token was exchanged.
    by_id = {v: k for k, v in users.items()}
    deadline = time.monotonic() + 15
    while True:
        rows = json.loads(gh("--output", "json", "audit", "query", "--server", "saas-exchange"))
        calls = [r for r in rows if r.get("tool") == "whoami" and r.get("decision") == "allow"]
        if len(calls) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling interval of a bounded wait for the audit writer
    ran_as = sorted(by_id.get(r.get("user"), r.get("user")) for r in calls)
    check(ran_as == ["ann", "ann", "bob", "bob"], f"exchange: the audit names the person of each call ({ran_as})")
    request_user = {r["request_id"]: by_id.get(r.get("user")) for r in rows}
    for claims, _, _ in saas.exchanges:
        check(request_user.get(claims["jti"]) == claims["preferred_username"],
              f"exchange: {claims['preferred_username']}'s exchange is the audited request {claims['jti']}")

    # Directly at the stand-in, with the subject token Gatehouse sent for Ann.
    ann_token = next(raw for c, _, raw in saas.exchanges if c["preferred_username"] == "ann")
    other = Saas("gatehouse-exchange", secret, trusted_issuer=gatehouse)
    saas.clients["not-for-exchange"] = ("its-secret", None)

    def ask(at: Saas, subject_token: str, *, client: tuple[str, str] = (saas.client_id, secret),
            **extra: str) -> tuple[int, dict]:
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token, "subject_token_type": JWT_TYPE,
                "client_id": client[0], "client_secret": client[1], **extra}
        answer = httpx2.post(f"{at.url}/token", data=form, timeout=15, trust_env=False)
        return answer.status_code, answer.json()

    refusals = [
        ("a tampered subject token (Ann's, payload changed to Bob)",
         ask(saas, tampered(ann_token, preferred_username="bob")), 400, "invalid_request", "InvalidSignatureError"),
        ("Ann's subject token at another SaaS (wrong audience)",
         ask(other, ann_token), 400, "invalid_request", "InvalidAudienceError"),
        ("Ann's subject token replayed", ask(saas, ann_token), 400, "invalid_request", "used before"),
        ("an access-token subject_token_type",
         ask(saas, ann_token, subject_token_type="urn:ietf:params:oauth:token-type:access_token"),
         400, "invalid_request", "must be a JWT"),
        ("another resource", ask(saas, ann_token, resource="https://elsewhere.example/mcp"),
         400, "invalid_target", "resource"),
        ("a client not allowed to exchange", ask(saas, ann_token, client=("not-for-exchange", "its-secret")),
         400, "unauthorized_client", "may not exchange"),
        ("a wrong client secret", ask(saas, ann_token, client=(saas.client_id, "wrong")), 401, "invalid_client", ""),
    ]
    for what, (status, body), want_status, want_error, why in refusals:
        check(status == want_status and body.get("error") == want_error and why in body.get("error_description", why),
              f"stand-in refuses {what}: {status} {want_error} ({body.get('error_description', '')})")
    check(len(saas.exchanges) == 2 and not other.exchanges, "no refused request was granted a token")
    return [secret, *issued.values()]
