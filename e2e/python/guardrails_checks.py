"""End-to-end: the Python MCP SDK through a Gatehouse server carrying the README's guardrail set
on both directions (e2e/run.sh group guardrails-python provisions it and passes this file to
pytest explicitly; `E2E_DIRECT_URL` is the same upstream without Gatehouse).

Both wire eras are exercised: redaction reaches the client, a secret is refused as a JSON-RPC
error, and what the protocol relies on (version, capabilities, server info, tool schemas) is
exactly what the upstream sent.
"""

from __future__ import annotations

import os

import pytest
from mcp import MCPError

from test_gateway import FORBIDDEN, MODES, connect, text_of

pytestmark = pytest.mark.anyio

# crates/gatehouse/src/gateway/discovery.rs: GATEWAY_EXTENSIONS
GATEHOUSE_EXTENSION = "io.modelcontextprotocol/oauth-client-credentials"


@pytest.fixture(scope="session")
def direct_url() -> str:
    value = os.environ.get("E2E_DIRECT_URL")
    if not value:
        pytest.exit("set E2E_DIRECT_URL (e2e/run.sh does)", returncode=2)
    return value


@pytest.mark.parametrize("mode", MODES)
async def test_protocol_fields_pass_untouched(mcp_url: str, api_key: str, direct_url: str, mode: str) -> None:
    async with connect(mcp_url, {"Authorization": f"Bearer {api_key}"}, mode) as guarded:
        async with connect(direct_url, {}, mode) as direct:
            assert guarded.protocol_version == direct.protocol_version
            mine_caps, their_caps = guarded.server_capabilities, direct.server_capabilities
            if mode == "auto":
                # 2026-07-28's server/discover also names the extension Gatehouse itself
                # implements (client credentials at its authorization server), beside the
                # upstream's own; everything else is the upstream's, untouched.
                assert mine_caps.extensions == {**(their_caps.extensions or {}), GATEHOUSE_EXTENSION: {}}
                mine_caps = mine_caps.model_copy(update={"extensions": their_caps.extensions})
            assert mine_caps == their_caps
            mine = {tool.name: tool for tool in (await guarded.list_tools()).tools}
            theirs = {tool.name: tool for tool in (await direct.list_tools()).tools}
            assert sorted(mine) == ["add", "echo"]
            for name, tool in mine.items():
                assert tool == theirs[name]


@pytest.mark.parametrize("mode", MODES)
async def test_redaction_and_refusal(mcp_url: str, api_key: str, mode: str) -> None:
    async with connect(mcp_url, {"Authorization": f"Bearer {api_key}"}, mode) as client:
        # A card number would be refused: `no-secrets` blocks the default set, cards included.
        text = "mail bob@example.com, call +1 (415) 555-0132 on 18.06.2025, release v2.10.3"
        result = await client.call_tool("echo", {"text": text})
        assert not result.is_error, result
        assert text_of(result) == (
            "mail [REDACTED:email], call [REDACTED:phone] on 18.06.2025, release v2.10.3"
        )
        for secret, detector in [
            ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_token"),
            ("card 5500 0000 0000 0004", "credit_card"),
        ]:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("echo", {"text": secret})
            assert refused.value.code == FORBIDDEN, refused.value.error
            assert refused.value.data["guardrail"] == {
                "rule": "no-secrets",
                "detector": detector,
                "direction": "request",
            }
            assert secret.split()[1] not in str(refused.value.error)
        result = await client.call_tool("add", {"a": 20, "b": 22})
        assert text_of(result) == "42"
