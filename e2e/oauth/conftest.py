"""Shared fixtures of the OAuth end-to-end tests (see e2e/README.md, "OAuth groups").

The environment comes from e2e/run.sh, which starts a Gatehouse of its own for each OAuth
group (registration open, servers `demo` and `other`, a user, client-credentials clients).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"set {name} (e2e/run.sh does)", returncode=2)
    return value


@dataclass(frozen=True)
class Gateway:
    base: str  # the public URL, which is also the issuer
    server: str  # the server the clients are granted
    other: str  # a second server behind the same gateway

    def mcp_url(self, server: str | None = None) -> str:
        return f"{self.base}/{server or self.server}/mcp"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    return Gateway(
        base=_required("E2E_OAUTH_BASE"),
        server=os.environ.get("E2E_OAUTH_SERVER", "demo"),
        other=os.environ.get("E2E_OAUTH_OTHER_SERVER", "other"),
    )


@pytest.fixture(scope="session")
def user() -> tuple[str, str]:
    """A local user (username, password) whose group may use the server's E2E_OAUTH_USER_TOOLS."""
    return _required("E2E_OAUTH_USER"), _required("E2E_OAUTH_PASSWORD")


@pytest.fixture(scope="session")
def user_tools() -> list[str]:
    return sorted(t.strip() for t in os.environ.get("E2E_OAUTH_USER_TOOLS", "echo,add").split(","))


@pytest.fixture(scope="session")
def client_tools() -> list[str]:
    """The tools the client-credentials clients' connection to the server grants."""
    return sorted(t.strip() for t in os.environ.get("E2E_OAUTH_CLIENT_TOOLS", "echo,add").split(","))


@pytest.fixture(scope="session")
def cc_clients() -> dict[str, tuple[str, str]]:
    """Client-credentials clients by token endpoint auth method: (client_id, client_secret)."""
    return {
        "client_secret_basic": (_required("E2E_OAUTH_CC_BASIC_ID"), _required("E2E_OAUTH_CC_BASIC_SECRET")),
        "client_secret_post": (_required("E2E_OAUTH_CC_POST_ID"), _required("E2E_OAUTH_CC_POST_SECRET")),
    }


@pytest.fixture(scope="session")
def private_key_jwt_client() -> tuple[str, str]:
    """A client-credentials client that authenticates with `private_key_jwt`: (client_id,
    its PKCS #8 private key in PEM); Gatehouse holds the public half as the client's JWKS."""
    with open(_required("E2E_OAUTH_PKJWT_KEY")) as pem:
        return _required("E2E_OAUTH_PKJWT_ID"), pem.read()
