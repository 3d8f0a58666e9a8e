"""End-to-end: stdio MCP servers run by Gatehouse, reached with the official SDKs.

Servers (provisioned by e2e/run.sh, group `stdio`):
  st-everything   npx @modelcontextprotocol/server-everything, shared
  st-files        npx @modelcontextprotocol/server-filesystem E2E_STDIO_FILES, shared
  st-python       python -m notes_server (the Python SDK's MCPServer), shared
  st-python-pp    the same, sharing = per_principal
Clients alice and bob are granted every tool of each.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CreateMessageResult, ElicitResult, TextContent

pytestmark = pytest.mark.anyio

GATEWAY = os.environ.get("E2E_GATEWAY", "")
KEYS = {"alice": os.environ.get("E2E_STDIO_ALICE_KEY", ""), "bob": os.environ.get("E2E_STDIO_BOB_KEY", "")}
FILES = os.environ.get("E2E_STDIO_FILES", "")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def environment() -> None:
    if not (GATEWAY and all(KEYS.values()) and FILES):
        pytest.exit("set E2E_GATEWAY, E2E_STDIO_ALICE_KEY, E2E_STDIO_BOB_KEY, E2E_STDIO_FILES (e2e/run.sh does)", 2)


def unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def connect(server: str, who: str, mode: str = "legacy", **callbacks) -> AsyncIterator[Client]:
    try:
        headers = {"Authorization": f"Bearer {KEYS[who]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            transport = streamable_http_client(f"{GATEWAY}/{server}/mcp", http_client=http)
            async with Client(transport, mode=mode, **callbacks) as client:
                yield client
    except BaseExceptionGroup as group:
        leaf = unwrap(group)
        if leaf is group:
            raise
        raise leaf from None


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def answering(text: str, before=None):
    """A sampling callback that answers `text` (after running `before`, if given)."""

    async def callback(context, params) -> CreateMessageResult:
        if before is not None:
            before()
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="e2e")

    return callback


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_npm_servers_answer_through_gatehouse(mode: str) -> None:
    async with connect("st-everything", "alice", mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo" in names
        result = await client.call_tool("echo", {"message": f"hi ({mode})"})
        assert text_of(result) == f"Echo: hi ({mode})"
    async with connect("st-files", "bob", mode) as client:
        result = await client.call_tool("read_text_file", {"path": os.path.join(FILES, "greeting.txt")})
        assert not result.is_error, result
        assert "hello from a file" in text_of(result)


async def test_concurrent_python_and_typescript_clients_share_one_child() -> None:
    script = os.path.join(os.path.dirname(__file__), "concurrent.mjs")
    node = subprocess.Popen(
        [os.environ.get("E2E_TS_NODE", "node"), script],
        env={**os.environ, "E2E_URL": f"{GATEWAY}/st-everything/mcp", "E2E_KEY": KEYS["bob"]},
    )
    got: dict[str, str] = {}

    async def one(n: int) -> None:
        who = "alice" if n % 2 else "bob"
        async with connect("st-everything", who) as client:
            for round in range(5):
                text = f"{who}-{n}-{round}"
                got[text] = text_of(await client.call_tool("echo", {"message": text}))

    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(one, n)
    assert got == {text: f"Echo: {text}" for text in got}, "each call got its own answer"
    assert len(got) == 40
    assert await anyio.to_thread.run_sync(node.wait) == 0, "the TypeScript clients got their own answers"


async def test_sampling_and_elicitation_reach_the_client_whose_call_asked() -> None:
    for who in ("alice", "bob"):
        async def elicited(context, params) -> ElicitResult:
            return ElicitResult(action="accept", content={"name": who})

        async with connect(
            "st-python", who, sampling_callback=answering(f"sampled by {who}"), elicitation_callback=elicited
        ) as client:
            assert text_of(await client.call_tool("sample", {"prompt": "who?"})) == f"sampled by {who}"
            assert text_of(await client.call_tool("ask", {})) == who
    # The npm server's own sampling tool, the same way.
    async with connect("st-everything", "alice", sampling_callback=answering("from alice")) as client:
        result = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
        assert "from alice" in text_of(result), text_of(result)


async def pid_of(server: str, who: str) -> int:
    async with connect(server, who) as client:
        return int(text_of(await client.call_tool("pid", {})))


async def test_a_child_killed_mid_call_fails_the_call_and_the_next_call_works() -> None:
    before = await pid_of("st-python", "alice")
    # The child asks this client for a sample: the call is certainly in flight. The callback
    # kills the child before answering.
    kill = lambda: os.kill(before, signal.SIGKILL)  # noqa: E731
    async with connect("st-python", "alice", sampling_callback=answering("too late", before=kill)) as client:
        with pytest.raises(MCPError):
            await client.call_tool("sample", {"prompt": "x"})
    with anyio.fail_after(30):
        while True:
            try:
                after = await pid_of("st-python", "alice")
                break
            except MCPError:
                await anyio.sleep(0.2)  # polling interval while the supervisor restarts it
    assert after != before, "a new process serves after the crash"


async def test_per_principal_gives_each_client_its_own_child() -> None:
    alice, bob = await pid_of("st-python-pp", "alice"), await pid_of("st-python-pp", "bob")
    assert alice != bob
    assert await pid_of("st-python-pp", "alice") == alice
    shared_alice, shared_bob = await pid_of("st-python", "alice"), await pid_of("st-python", "bob")
    assert shared_alice == shared_bob
