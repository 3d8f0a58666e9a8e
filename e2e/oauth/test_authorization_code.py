"""The Python SDK's `OAuthClientProvider` (mcp 2.3.0): authorization code + PKCE with dynamic
client registration, against Gatehouse's authorization server.

The SDK discovers everything from the gateway's 401, registers itself (RFC 7591), and sends
the user to the authorization URL through `redirect_handler`. Here that handler is a scripted
browser (e2e/oauth/browser.py: a cookie jar, the sign-in form, the consent form) and the
`callback_handler` hands the SDK the `code`, `state` and `iss` of the final redirect. Nothing
listens on the redirect URI: the browser stops at that redirect, as a native app's would.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from browser import authorize, callback_params
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from support import MemoryStorage, Recorder, connect, text_of, verify_access_token

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedBrowser:
    """The person at the browser: signs in as `user` and approves. The cookie jar persists, so
    a second authorization finds the user signed in (consent is still asked)."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=15, trust_env=False)
        self.authorization_urls: list[str] = []
        self.callbacks: list[str] = []
        self.log: list[str] = []

    async def redirect_handler(self, url: str) -> None:
        self.authorization_urls.append(url)
        self.callbacks.append(await authorize(url, self.username, self.password, client=self.http, log=self.log.append))

    async def callback_handler(self) -> AuthorizationCodeResult:
        params = callback_params(self.callbacks[-1])
        if "error" in params:
            raise OAuthFlowError(f"authorization refused: {params['error']}: {params.get('error_description')}")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def browser(user):
    b = ScriptedBrowser(*user)
    yield b
    await b.aclose()


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# None: the SDK sends no method, so Gatehouse registers client_secret_basic (RFC 7591 §2).
@pytest.mark.parametrize("auth_method", [None, "none", "client_secret_post"], ids=["default", "none", "post"])
async def test_authorization_code_with_registration(gateway, user_tools, browser, auth_method) -> None:
    url = gateway.mcp_url()
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[redirect_uri],
            client_name="gatehouse-e2e-python",
            token_endpoint_auth_method=auth_method,
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    recorder = Recorder()
    async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"response": [recorder]}) as http:
        async with connect(url, http) as client:
            listed = await client.list_tools()
            assert sorted(t.name for t in listed.tools) == user_tools
            result = await client.call_tool("echo", {"text": "on behalf of a user"})
            assert text_of(result) == "on behalf of a user", result
            result = await client.call_tool("add", {"a": 1, "b": 2})
            assert text_of(result) == "3", result

            flow = "\n".join(recorder.lines + browser.log)
            # Registration (RFC 7591) happened once, with what the SDK asked for.
            assert recorder.paths("POST", "/oauth/register") == ["POST /oauth/register -> 201"], flow
            info = storage.client_info
            assert info.client_id.startswith("dcr_"), info
            expected_method = auth_method or "client_secret_basic"
            assert info.token_endpoint_auth_method == expected_method, info
            assert (info.client_secret is not None) == (expected_method != "none"), info

            # One trip through the browser; the authorization request the SDK built.
            assert len(browser.authorization_urls) == 1, flow
            q = query(browser.authorization_urls[0])
            assert q["response_type"] == ["code"] and q["client_id"] == [info.client_id], q
            assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43, q
            assert q["resource"] == [url], q
            assert q["scope"] == [f"mcp:{gateway.server}"], q  # from the 401 challenge
            assert q["redirect_uri"] == [redirect_uri], q
            cb = callback_params(browser.callbacks[0])
            assert cb["iss"] == gateway.base and cb["state"] == q["state"][0], cb  # RFC 9207

            tokens = storage.tokens
            assert tokens.refresh_token and tokens.refresh_token.startswith("ghr_"), tokens
            _, claims = await verify_access_token(tokens.access_token, gateway.base, url)
            assert claims["client_id"] == info.client_id and claims["sub"].startswith("usr_"), claims
            assert claims["scope"] == f"mcp:{gateway.server}", claims

            # Refresh: the SDK refreshes when it believes the access token has expired. Its
            # expiry time is the provider's state (`context.token_expiry_time`); moving it
            # into the past stands in for waiting out the access token's lifetime.
            provider.context.token_expiry_time = time.time() - 1
            result = await client.call_tool("echo", {"text": "after refresh"})
            assert text_of(result) == "after refresh", result
            refreshed = storage.tokens
            assert refreshed.access_token != tokens.access_token
            # Refresh tokens rotate on every use (OAuth 2.1 §4.3.1 for public clients).
            assert refreshed.refresh_token and refreshed.refresh_token != tokens.refresh_token
            assert len(browser.authorization_urls) == 1, "a refresh must not need the browser"
            assert recorder.lines.count("POST /oauth/token -> 200") == 2, "\n".join(recorder.lines)
            _, claims2 = await verify_access_token(refreshed.access_token, gateway.base, url)
            assert claims2["sub"] == claims["sub"] and claims2["jti"] != claims["jti"]

            # A second refresh uses the rotated token; after that, the first one presented
            # again is theft (past the retry grace, whose successor is used): refused, and
            # its whole family is revoked, the SDK's current refresh token included.
            provider.context.token_expiry_time = time.time() - 1
            result = await client.call_tool("echo", {"text": "second refresh"})
            assert text_of(result) == "second refresh", result
            assert recorder.lines.count("POST /oauth/token -> 200") == 3, "\n".join(recorder.lines)
            for presented in (tokens.refresh_token, storage.tokens.refresh_token):
                reused = await raw_refresh(gateway.base, info, presented)
                assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant", reused.text


async def raw_refresh(base: str, info, refresh_token: str) -> httpx2.Response:
    """A refresh request outside the SDK, authenticated the way the client registered."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": info.client_id}
    auth = None
    if info.token_endpoint_auth_method == "client_secret_post":
        form["client_secret"] = info.client_secret
    elif info.token_endpoint_auth_method == "client_secret_basic":
        auth = (info.client_id, info.client_secret)
    async with httpx2.AsyncClient(timeout=15, trust_env=False) as raw:
        return await raw.post(f"{base}/oauth/token", data=form, auth=auth)


async def test_ungranted_tool_stays_refused(gateway, browser, user_tools) -> None:
    """A tool the user's group is not granted: the gateway answers 403 without an
    `insufficient_scope` challenge (no token could allow it), so the SDK does not send the
    user to re-authorize; the call fails and the earlier token keeps working."""
    url = gateway.mcp_url()
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[f"http://127.0.0.1:{free_port()}/callback"], token_endpoint_auth_method="none"
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    denied = "delete_records"
    assert denied not in user_tools
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        listed = []
        refused = None
        try:
            async with connect(url, http) as client:
                listed = (await client.list_tools()).tools
                result = await client.call_tool(denied, {"table": "users"})
                refused = result
        except Exception as err:  # the SDK may surface the 403 as an exception
            refused = err
        assert refused is not None
        assert "not granted" in str(refused) or "403" in str(refused), repr(refused)
        assert sorted(t.name for t in listed) == user_tools
        assert len(browser.authorization_urls) == 1, "no step-up was attempted"
        async with connect(url, http) as client:
            result = await client.call_tool("echo", {"text": "still here"})
            assert text_of(result) == "still here"
        assert len(browser.authorization_urls) == 1


async def test_denied_consent_fails_the_connection(gateway, user) -> None:
    """The user presses Deny: the redirect carries `error=access_denied` (with `iss`)."""
    url = gateway.mcp_url()
    seen: list[str] = []

    async def deny(authorization_url: str) -> None:
        seen.append(await authorize(authorization_url, *user, decision="deny"))

    async def callback() -> AuthorizationCodeResult:
        params = callback_params(seen[-1])
        assert params.get("iss") == gateway.base, params
        raise OAuthFlowError(f"authorization refused: {params.get('error')}")

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[f"http://127.0.0.1:{free_port()}/callback"], token_endpoint_auth_method="none"
        ),
        storage=MemoryStorage(),
        redirect_handler=deny,
        callback_handler=callback,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        with pytest.raises(Exception) as raised:
            async with connect(url, http) as client:
                await client.list_tools()
    assert "access_denied" in str(raised.value), repr(raised.value)
