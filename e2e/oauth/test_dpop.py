"""DPoP (RFC 9449) with a client whose proofs are made by PyJWT and `cryptography`, not by
Gatehouse's code: the token endpoint binds the token to the client's P-256 key (`cnf.jkt`,
computed here per RFC 7638), the gateway accepts the token with a fresh proof, and refuses a
replayed proof, a proof for another URL, and the bound token sent as a bearer token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from support import INITIALIZE, MCP_HEADERS, verify_access_token

pytestmark = pytest.mark.anyio


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Holder:
    """A client's DPoP key and the proofs it signs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))

    def thumbprint(self) -> str:
        # RFC 7638: the required members in lexicographic order, no whitespace.
        members = {k: self.jwk[k] for k in ("crv", "kty", "x", "y")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = b64url(hashlib.sha256(token.encode()).digest())
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self.jwk})


async def test_a_dpop_bound_token_needs_a_fresh_proof_by_its_key(gateway, cc_clients) -> None:
    client_id, secret = cc_clients["client_secret_basic"]
    url = gateway.mcp_url()
    token_url = f"{gateway.base}/oauth/token"
    holder = Holder()
    async with httpx2.AsyncClient(timeout=30, trust_env=False) as http:
        response = await http.post(
            token_url,
            data={"grant_type": "client_credentials", "resource": url},
            auth=(client_id, secret),
            headers={"DPoP": holder.proof("POST", token_url)},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "DPoP", body
        token = body["access_token"]
        _, claims = await verify_access_token(token, gateway.base, url)
        assert claims["cnf"]["jkt"] == holder.thumbprint(), claims

        proof = holder.proof("POST", url, token)
        headers = {**MCP_HEADERS, "Authorization": f"DPoP {token}", "DPoP": proof}
        accepted = await http.post(url, json=INITIALIZE, headers=headers)
        assert accepted.status_code == 200, accepted.text

        replayed = await http.post(url, json=INITIALIZE, headers=headers)
        assert replayed.status_code == 401, replayed.text
        assert replayed.headers["www-authenticate"].startswith("DPoP "), replayed.headers
        assert replayed.json()["error"]["data"]["reason"] == "invalid_dpop_proof"

        elsewhere = holder.proof("POST", f"{gateway.base}/{gateway.other}/mcp", token)
        wrong_url = await http.post(
            url, json=INITIALIZE, headers={**headers, "DPoP": elsewhere}
        )
        assert wrong_url.status_code == 401, wrong_url.text
        assert wrong_url.json()["error"]["data"]["reason"] == "invalid_dpop_proof"

        as_bearer = await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})
        assert as_bearer.status_code == 401, as_bearer.text
        assert as_bearer.json()["error"]["data"]["reason"] == "dpop_proof_required"
