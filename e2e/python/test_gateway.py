"""End-to-end: the official Python MCP SDK (`mcp`, pinned in requirements.txt) through Gatehouse.

The SDK's `Client` takes any transport; `streamable_http_client(url, http_client=...)` with an
`httpx2.AsyncClient(headers=...)` is how mcp 2.x sends extra headers (the API key) on every
request. `mode="auto"` probes `server/discover` (the 2026-07-28 stateless era) and falls back to
`initialize`; `mode="legacy"` forces the initialize handshake (2025-11-25, with a session).
Both are run, so both of the gateway's paths are exercised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

pytestmark = pytest.mark.anyio

MODES = ["auto", "legacy"]
# What each mode is expected to negotiate with the example server (it speaks both eras).
EXPECTED_VERSION = {"auto": "2026-07-28", "legacy": "2025-11-25"}

# Gatehouse's JSON-RPC error codes (crates/gatehouse/src/error.rs).
UNAUTHENTICATED = -32011
FORBIDDEN = -32012


@asynccontextmanager
async def connect(url: str, headers: dict[str, str], mode: str = "auto") -> AsyncIterator[Client]:
    """A connected SDK client whose every HTTP request carries `headers`.

    Errors (including assertion failures in the body) leave the SDK's task groups wrapped in
    exception groups; they are unwrapped here so pytest reports the original error.
    """
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                yield client
    except BaseExceptionGroup as group:
        leaf = unwrap(group)
        if leaf is group:
            raise
        raise leaf from None


def unwrap(exc: BaseException) -> BaseException:
    """The single leaf of (possibly nested) exception groups raised out of task groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_granted_tools_only(mcp_url: str, api_key: str, granted: list[str], denied: str, mode: str) -> None:
    async with connect(mcp_url, {"Authorization": f"Bearer {api_key}"}, mode) as client:
        assert client.protocol_version == EXPECTED_VERSION[mode]
        assert client.server_capabilities.tools is not None

        listed = await client.list_tools()
        names = sorted(tool.name for tool in listed.tools)
        assert names == granted
        assert denied not in names

        result = await client.call_tool("echo", {"text": f"hello from python ({mode})"})
        assert not result.is_error, result
        assert text_of(result) == f"hello from python ({mode})"

        result = await client.call_tool("add", {"a": 40, "b": 2})
        assert not result.is_error, result
        assert text_of(result) == "42"


@pytest.mark.parametrize("mode", MODES)
async def test_ungranted_tool_is_refused(mcp_url: str, api_key: str, denied: str, mode: str) -> None:
    async with connect(mcp_url, {"Authorization": f"Bearer {api_key}"}, mode) as client:
        await client.list_tools()
        with pytest.raises(MCPError) as refused:
            await client.call_tool(denied, {"table": "users"})
        assert refused.value.code == FORBIDDEN, refused.value.error
        assert isinstance(refused.value.data, dict) and refused.value.data.get("reason") == "tool_not_granted", (
            refused.value.error
        )
        # The connection is still usable afterwards.
        result = await client.call_tool("echo", {"text": "still here"})
        assert text_of(result) == "still here"


async def test_x_api_key_header(mcp_url: str, api_key: str, granted: list[str]) -> None:
    async with connect(mcp_url, {"X-API-Key": api_key}) as client:
        listed = await client.list_tools()
        assert sorted(tool.name for tool in listed.tools) == granted
        result = await client.call_tool("echo", {"text": "x-api-key"})
        assert text_of(result) == "x-api-key"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer gth_" + "A" * 40}],
    ids=["no-key", "unknown-key"],
)
async def test_unauthenticated_client_is_rejected(mcp_url: str, headers: dict[str, str], mode: str) -> None:
    with pytest.raises(MCPError) as raised:
        async with connect(mcp_url, headers, mode):
            pass
    assert raised.value.code == UNAUTHENTICATED, raised.value.error


async def test_bare_post_without_key_is_401(mcp_url: str) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            mcp_url,
            json={"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}},
            headers={"accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    # Refused before the body is read, so the id may be unknown (JSON-RPC then says null).
    assert body["id"] in (7, None)
    assert body["error"]["code"] == UNAUTHENTICATED
    assert body["error"]["data"]["reason"] == "missing_credential"


@pytest.mark.parametrize(
    ("path_suffix", "headers", "status"),
    [
        ("", {}, 401),
        ("", {"Authorization": "Bearer gth_" + "A" * 40}, 401),
        ("/../../no-such-server/mcp", {}, 404),
    ],
    ids=["no-key", "unknown-key", "unknown-server"],
)
async def test_keep_alive_connection_survives_early_rejections(
    mcp_url: str, path_suffix: str, headers: dict[str, str], status: int
) -> None:
    """Requests refused before their body is read must not break the pooled connection.

    httpx (the Python SDK's HTTP client) writes a POST's headers and body separately and reuses
    keep-alive connections: if the server answers without reading the body and then drops the
    connection (with no `Connection: close`), the next request on it fails with
    "Server disconnected without sending a response". The SDK's own connect does exactly this
    sequence (discover refused with 401, then initialize on the same connection).
    """
    url = str(httpx2.URL(mcp_url + path_suffix)) if path_suffix else mcp_url
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    failures: list[str] = []
    async with httpx2.AsyncClient(timeout=30, headers=headers) as http:
        for i in range(100):
            try:
                response = await http.post(
                    url, json=body, headers={"accept": "application/json, text/event-stream"}
                )
            except httpx2.TransportError as exc:
                failures.append(f"request {i}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code != status:
                failures.append(f"request {i}: HTTP {response.status_code}")
    assert not failures, f"{len(failures)} of 100 requests failed, first: {failures[0]}"
