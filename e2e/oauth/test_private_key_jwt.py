"""The Python SDK's `PrivateKeyJWTOAuthProvider` (RFC 7523 client authentication, the
client-credentials extension's recommended method) through Gatehouse's authorization server.

The SDK signs each assertion itself (`SignedJWTParameters`, PyJWT, RS256, no `kid`); Gatehouse
checks it against the JWKS registered for the client. Then the attacks on the assertion, made
with PyJWT alone: a replayed `jti`, another key, another audience, a lifetime past five
minutes, and an assertion naming another client.
"""

from __future__ import annotations

import time
import uuid

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters
from support import MemoryStorage, Recorder, connect, text_of, verify_access_token

pytestmark = pytest.mark.anyio


async def test_the_sdk_authenticates_with_a_signed_assertion(gateway, private_key_jwt_client, client_tools) -> None:
    client_id, pem = private_key_jwt_client
    url = gateway.mcp_url()
    storage = MemoryStorage()
    signer = SignedJWTParameters(issuer=client_id, subject=client_id, signing_key=pem)
    provider = PrivateKeyJWTOAuthProvider(
        server_url=url,
        storage=storage,
        client_id=client_id,
        assertion_provider=signer.create_assertion_provider(),
        issuer=gateway.base,
    )
    recorder = Recorder()
    async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"response": [recorder]}) as http:
        async with connect(url, http) as client:
            listed = await client.list_tools()
            assert sorted(t.name for t in listed.tools) == client_tools
            result = await client.call_tool("echo", {"text": "signed by my own key"})
            assert not result.is_error, result
            assert text_of(result) == "signed by my own key"
    flow = "\n".join(recorder.lines)
    assert recorder.paths("POST", "/oauth/token") == ["POST /oauth/token -> 200"], flow
    _, claims = await verify_access_token(storage.tokens.access_token, gateway.base, url)
    assert claims["client_id"] == client_id and claims["sub"] == client_id, claims
    assert claims["scope"] == f"mcp:{gateway.server}", claims


def _assertion(key, client_id: str, audience: str, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256")


async def _token(gateway, assertion: str, client_id: str | None = None) -> httpx2.Response:
    form = {
        "grant_type": "client_credentials",
        "resource": gateway.mcp_url(),
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    if client_id:
        form["client_id"] = client_id
    async with httpx2.AsyncClient(timeout=15, trust_env=False) as raw:
        return await raw.post(f"{gateway.base}/oauth/token", data=form)


async def test_assertion_attacks_are_refused(gateway, private_key_jwt_client) -> None:
    client_id, pem = private_key_jwt_client
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    good = _assertion(key, client_id, gateway.base)
    first = await _token(gateway, good)
    assert first.status_code == 200, first.text

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    attacks = {
        "the same assertion again (jti)": good,
        "signed by another key": _assertion(stranger, client_id, gateway.base),
        "for another audience": _assertion(key, client_id, "https://elsewhere.example"),
        "valid for an hour": _assertion(key, client_id, gateway.base, exp=now + 3600),
        "expired": _assertion(key, client_id, gateway.base, iat=now - 600, exp=now - 300),
        "sub names another client": _assertion(key, client_id, gateway.base, sub="svc-client_secret_basic"),
    }
    for label, assertion in attacks.items():
        answer = await _token(gateway, assertion)
        assert answer.status_code in (400, 401), f"{label}: {answer.status_code} {answer.text}"
        assert answer.json()["error"] == "invalid_client", f"{label}: {answer.text}"
    # The client_id form field must agree with the assertion's issuer.
    mismatched = await _token(gateway, _assertion(key, client_id, gateway.base), client_id="svc-client_secret_post")
    assert mismatched.json().get("error") == "invalid_client", mismatched.text
