"""Helpers shared by the Python OAuth end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import jwt
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp_types import TextContent

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "gatehouse-e2e-raw", "version": "0.0.0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class MemoryStorage:
    """The SDK's `TokenStorage` protocol, in memory; keeps every token set it was given."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Recorder:
    """An httpx2 response hook noting `METHOD path -> status` of every request, the SDK's auth
    flow included (discovery, registration, token), to assert the sequence."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, response: httpx2.Response) -> None:
        self.lines.append(f"{response.request.method} {response.request.url.path} -> {response.status_code}")

    def paths(self, method: str, path: str) -> list[str]:
        return [line for line in self.lines if line.startswith(f"{method} {path} ->")]


def unwrap(exc: BaseException) -> BaseException:
    """The single leaf of (possibly nested) exception groups raised out of task groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def connect(url: str, http: httpx2.AsyncClient, mode: str = "auto") -> AsyncIterator[Client]:
    """An SDK client over `http` (which carries the OAuth provider as its `auth`)."""
    try:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client
    except BaseExceptionGroup as group:
        leaf = unwrap(group)
        if leaf is group:
            raise
        raise leaf from None


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def raw_initialize(url: str, token: str) -> httpx2.Response:
    """A bare `initialize` POST with `Authorization: Bearer token` (no SDK in between)."""
    async with httpx2.AsyncClient(timeout=15, trust_env=False) as http:
        return await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})


async def verify_access_token(token: str, issuer: str, audience: str) -> tuple[dict, dict]:
    """Checks a Gatehouse access token independently of Gatehouse's own code: PyJWT against the
    published JWKS. Returns (header, claims)."""
    async with httpx2.AsyncClient(timeout=15, trust_env=False) as http:
        response = await http.get(f"{issuer}/oauth/jwks.json")
    assert response.status_code == 200, response.text
    jwks = response.json()
    header = jwt.get_unverified_header(token)
    assert header.get("alg") == "EdDSA", header
    assert header.get("typ") == "at+jwt", header  # RFC 9068 §2.1
    keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks).keys}
    assert header.get("kid") in keys, f"kid {header.get('kid')} not in the JWKS {list(keys)}"
    claims = jwt.decode(
        token,
        key=keys[header["kid"]],
        algorithms=["EdDSA"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    # The same signature does not pass for another audience (PyJWT checks `aud` itself).
    try:
        jwt.decode(token, key=keys[header["kid"]], algorithms=["EdDSA"], audience=audience + "x", issuer=issuer)
    except jwt.InvalidAudienceError:
        pass
    else:
        raise AssertionError("the token was accepted for another audience")
    return header, claims
