"""The Python SDK's client-credentials provider through Gatehouse's authorization server.

`mcp.client.auth.extensions.client_credentials.ClientCredentialsOAuthProvider` (mcp 2.3.0)
gets the first 401, discovers the protected-resource and authorization-server metadata,
obtains a token with `grant_type=client_credentials` (client_secret_basic or
client_secret_post, `resource` and the challenged `scope`), and retries. The token is then
checked with PyJWT alone against /oauth/jwks.json, refused at another server (audience),
revoked through /oauth/revoke and refused afterwards, while the SDK recovers on its own.
"""

from __future__ import annotations

import httpx2
import pytest
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from support import MemoryStorage, Recorder, connect, raw_initialize, text_of, verify_access_token

pytestmark = pytest.mark.anyio

METHODS = ["client_secret_basic", "client_secret_post"]


@pytest.mark.parametrize("method", METHODS)
async def test_client_credentials_end_to_end(gateway, cc_clients, client_tools, method: str) -> None:
    client_id, secret = cc_clients[method]
    url = gateway.mcp_url()
    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=url,
        storage=storage,
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        issuer=gateway.base,
    )
    recorder = Recorder()
    async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"response": [recorder]}) as http:
        async with connect(url, http) as client:
            listed = await client.list_tools()
            assert sorted(t.name for t in listed.tools) == client_tools
            result = await client.call_tool("echo", {"text": f"client credentials ({method})"})
            assert not result.is_error, result
            assert text_of(result) == f"client credentials ({method})"

            # The flow the SDK ran: a 401, discovery from the challenge, one token request.
            flow = "\n".join(recorder.lines)
            assert recorder.paths("POST", f"/{gateway.server}/mcp")[0].endswith("-> 401"), flow
            assert recorder.paths("GET", f"/.well-known/oauth-protected-resource/{gateway.server}/mcp"), flow
            assert recorder.paths("GET", "/.well-known/oauth-authorization-server"), flow
            assert recorder.paths("POST", "/oauth/token") == ["POST /oauth/token -> 200"], flow
            assert not recorder.paths("POST", "/oauth/register"), flow

            token = storage.tokens.access_token
            assert storage.tokens.scope == f"mcp:{gateway.server}", storage.tokens
            assert storage.tokens.refresh_token is None  # OAuth 2.1 §4.2: none for this grant

            # Independent verification: PyJWT, the published JWKS, no Gatehouse code.
            header, claims = await verify_access_token(token, gateway.base, url)
            assert claims["sub"] == client_id and claims["client_id"] == client_id, claims
            assert claims["scope"] == f"mcp:{gateway.server}", claims
            assert claims["exp"] > claims["iat"], claims

            # The audience is enforced by the gateway: a token for this server is refused at
            # another one (to which the client also has a connection).
            other = await raw_initialize(gateway.mcp_url(gateway.other), token)
            assert other.status_code == 401, other.text
            assert 'error="invalid_token"' in other.headers.get("www-authenticate", ""), other.headers
            same = await raw_initialize(url, token)
            assert same.status_code == 200, same.text

            # RFC 7009 revocation with the client's own authentication method.
            async with httpx2.AsyncClient(timeout=15, trust_env=False) as raw:
                form = {"token": token, "token_type_hint": "access_token"}
                if method == "client_secret_basic":
                    revoked = await raw.post(f"{gateway.base}/oauth/revoke", data=form, auth=(client_id, secret))
                else:
                    revoked = await raw.post(
                        f"{gateway.base}/oauth/revoke",
                        data={**form, "client_id": client_id, "client_secret": secret},
                    )
            assert revoked.status_code == 200, revoked.text
            after = await raw_initialize(url, token)
            assert after.status_code == 401, after.text
            assert 'error="invalid_token"' in after.headers.get("www-authenticate", ""), after.headers

            # The SDK's next call meets that 401 and gets a new token by itself.
            result = await client.call_tool("add", {"a": 40, "b": 2})
            assert text_of(result) == "42", result
            assert storage.tokens.access_token != token
            assert len(storage.history) == 2
            assert recorder.lines.count("POST /oauth/token -> 200") == 2, "\n".join(recorder.lines)


async def test_wrong_secret_is_refused(gateway, cc_clients) -> None:
    client_id, _ = cc_clients["client_secret_basic"]
    provider = ClientCredentialsOAuthProvider(
        server_url=gateway.mcp_url(),
        storage=MemoryStorage(),
        client_id=client_id,
        client_secret="gcs_" + "x" * 43,
        issuer=gateway.base,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        with pytest.raises(Exception) as raised:
            async with connect(gateway.mcp_url(), http) as client:
                await client.list_tools()
    assert "invalid_client" in str(raised.value) or "401" in str(raised.value), repr(raised.value)
