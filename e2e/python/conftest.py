"""Shared fixtures for the Python end-to-end tests (see e2e/README.md)."""

from __future__ import annotations

import os

import pytest


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"set {name} (e2e/run.sh does)", returncode=2)
    return value


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def mcp_url() -> str:
    """The gateway endpoint of the demo server, e.g. http://127.0.0.1:PORT/demo/mcp."""
    return _required("E2E_MCP_URL")


@pytest.fixture(scope="session")
def api_key() -> str:
    """An API key of a client granted exactly the tools in E2E_GRANTED."""
    return _required("E2E_API_KEY")


@pytest.fixture(scope="session")
def granted() -> list[str]:
    return sorted(t.strip() for t in os.environ.get("E2E_GRANTED", "echo,add").split(","))


@pytest.fixture(scope="session")
def denied() -> str:
    return os.environ.get("E2E_DENIED", "delete_records")
