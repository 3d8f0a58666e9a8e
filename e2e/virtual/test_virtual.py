"""End-to-end: a virtual server (ADR 0006 §4) reached with the official Python SDK.

Servers (provisioned by e2e/run.sh, group `virtual`):
  v-a, v-b    the example server twice (HTTP): the same tool names, a collision
  v-notes     python -m notes_server (the Python SDK's MCPServer) as a stdio child
  v-down      an HTTP server nobody listens on
  virtual     members v-a, v-b, v-notes, v-down
Client v-agent is granted every tool of v-a, v-notes and v-down, and only `echo` of v-b.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

pytestmark = pytest.mark.anyio

GATEWAY = os.environ.get("E2E_GATEWAY", "")
KEY = os.environ.get("E2E_VIRTUAL_KEY", "")
NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def environment() -> None:
    if not (GATEWAY and KEY):
        pytest.exit("set E2E_GATEWAY and E2E_VIRTUAL_KEY (e2e/run.sh does)", 2)


@asynccontextmanager
async def connect() -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{GATEWAY}/virtual/mcp", http_client=http)
        async with Client(transport, mode="legacy") as client:
            yield client


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_the_sdk_lists_every_members_tools_under_prefixed_names_and_calls_each() -> None:
    async with connect() as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert all(NAME_RULE.match(n) for n in names), names
        assert {"v-a__echo", "v-a__add", "v-b__echo", "v-notes__echo", "v-notes__pid"} <= names, names
        assert "v-b__add" not in names, "v-b grants only echo"
        assert not any(n.startswith("v-down__") for n in names), names

        result = await client.call_tool("v-b__echo", {"text": "through the virtual server"})
        assert not result.is_error, result
        assert text_of(result) == "through the virtual server"
        result = await client.call_tool("v-a__add", {"a": 40, "b": 2})
        assert text_of(result) == "42"
        result = await client.call_tool("v-notes__echo", {"text": "over stdio"})
        assert text_of(result) == "over stdio"


async def test_the_member_down_is_named_in_the_lists_meta() -> None:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    url = f"{GATEWAY}/virtual/mcp"
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
        }
        response = await http.post(url, json=init)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        listed = await http.post(
            url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers={"Mcp-Session-Id": session}
        )
        assert listed.status_code == 200, listed.text
        result = listed.json()["result"]
        assert result["_meta"]["io.gatehouse/unavailable"] == ["v-down"], result.get("_meta")
        assert any(t["name"] == "v-a__echo" for t in result["tools"])
