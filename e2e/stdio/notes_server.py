"""A Python SDK MCP server (`MCPServer`, formerly FastMCP) run by Gatehouse as a stdio child:
`python -m notes_server`. Its tools ask the calling client for a sample or an answer, report
the process id (to tell children apart) and take their time (to be killed mid-call)."""

from __future__ import annotations

import os

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import SamplingMessage, TextContent
from pydantic import BaseModel

server = MCPServer("notes")


@server.tool()
def echo(text: str) -> str:
    return text


@server.tool()
def pid() -> str:
    return str(os.getpid())


@server.tool()
async def slow(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "done"


@server.tool()
async def sample(prompt: str, ctx: Context) -> str:
    result = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
        max_tokens=20,
        related_request_id=ctx.request_id,
    )
    return result.content.text if isinstance(result.content, TextContent) else "?"


class Name(BaseModel):
    name: str


@server.tool()
async def ask(ctx: Context) -> str:
    answer = await ctx.elicit("Who is asking?", Name)
    return answer.data.name if answer.action == "accept" and answer.data else answer.action


if __name__ == "__main__":
    server.run("stdio")
