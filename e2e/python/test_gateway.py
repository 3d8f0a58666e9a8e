"""End-to-end: the official Python MCP SDK (`mcp`, pinned in requirements.txt) through Gatehouse.

The SDK's `Client` takes any transport; `streamable_http_client(url, http_client=...)` with an
`httpx2.AsyncClient(headers=...)` is how mcp 2.x sends extra headers (the API key) on every
request. `mode="auto"` probes `server/discover` (the 2026-07-28 stateless era) and falls back to
`initialize`; `mode="legacy"` forces the initialize handshake (2025-11-25, with a session).
Both are run, so both of the gateway's paths are exercised.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
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
    ("other_path", "headers", "status"),
    [
        (None, {}, 401),
        (None, {"Authorization": "Bearer gth_" + "A" * 40}, 401),
        ("/no-such-server/mcp", {}, 404),
    ],
    ids=["no-key", "unknown-key", "unknown-server"],
)
async def test_keep_alive_connection_survives_early_rejections(
    mcp_url: str, other_path: str | None, headers: dict[str, str], status: int
) -> None:
    """Requests refused before their body is read must not break the pooled connection.

    httpx (the Python SDK's HTTP client) writes a POST's headers and body separately and reuses
    keep-alive connections: if the server answers without reading the body and then drops the
    connection (with no `Connection: close`), the next request on it fails with
    "Server disconnected without sending a response". The SDK's own connect does exactly this
    sequence (discover refused with 401, then initialize on the same connection).
    """
    url = str(httpx2.URL(mcp_url).copy_with(path=other_path)) if other_path else mcp_url
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


async def _read_http_response(stream) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, lower-cased headers, body) with a Content-Length body."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive(65536)
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += await stream.receive(65536)
    return status, headers, rest[:length]


async def test_connection_reuse_after_rejection_before_the_body_arrived(mcp_url: str) -> None:
    """The deterministic form of the keep-alive test above, on a raw socket.

    Send a POST's headers without the body. If Gatehouse refuses it right away (no key: 401),
    it must either announce `Connection: close` or keep the connection usable: after the
    body and a second request, a second response must come back on the same connection.
    If Gatehouse instead waits for the body before answering, that is fine too.
    """
    url = httpx2.URL(mcp_url)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    head = (
        f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    async with await anyio.connect_tcp(url.host, url.port) as stream:
        await stream.send(head)
        # Either the early answer comes at once, or the server is waiting for the body.
        early = None
        with anyio.move_on_after(3):
            early = await _read_http_response(stream)
        await stream.send(body)
        with anyio.fail_after(10):
            first = early or await _read_http_response(stream)
            assert first[0] == 401, first
            if first[1].get("connection", "").lower() == "close":
                return  # the client is told not to reuse the connection: fine
            await stream.send(head + body)
            try:
                second = await _read_http_response(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError) as exc:
                pytest.fail(
                    "Gatehouse answered before reading the request body and then closed the "
                    f"connection without `Connection: close` ({type(exc).__name__}); "
                    f"first response headers: {first[1]}"
                )
            assert second[0] == 401, second
