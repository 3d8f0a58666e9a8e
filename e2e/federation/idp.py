"""Stand-ins on loopback for an enterprise IdP and for workload platforms, written with PyJWT
and `cryptography` (no Gatehouse code).

The IdP serves OpenID discovery, its JWKS and a token endpoint with two grants: `password`
(a person's ID token, standing in for single sign-on) and RFC 8693 token exchange of that ID
token for an ID-JAG (`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`), as
draft-ietf-oauth-identity-assertion-authz-grant §4.3 describes: client authentication
required, the `audience`/`resource` pair checked against the IdP's policy, the ID-JAG typed
`oauth-id-jag+jwt` and naming the client by its id at the resource authorization server.

The platforms are two signing keys whose JWKS the same server publishes (`/cluster/jwks`,
`/ci/jwks`); tokens are minted in process, as the platform would hand them to a workload.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


class Key:
    """An ES256 key pair and its public JWK."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk = {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}

    def sign(self, claims: dict, typ: str = "JWT") -> str:
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid, "typ": typ})


class Standin:
    def __init__(self, *, client_id: str, client_secret: str, ras_issuer: str, resources: list[str],
                 ras_client_id: str, users: dict[str, dict]) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ras_issuer = ras_issuer
        self.resources = resources
        self.ras_client_id = ras_client_id
        self.users = users
        self.idp_key = Key("idp-1")
        self.cluster_key = Key("cluster-1")
        self.ci_key = Key("ci-1")
        self.issued: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                if path == "/.well-known/openid-configuration":
                    self.reply(200, standin.discovery())
                elif path == "/jwks":
                    self.reply(200, {"keys": [standin.idp_key.jwk]})
                elif path == "/cluster/jwks":
                    self.reply(200, {"keys": [standin.cluster_key.jwk]})
                elif path == "/ci/jwks":
                    self.reply(200, {"keys": [standin.ci_key.jwk]})
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if urllib.parse.urlsplit(self.path).path != "/token":
                    self.reply(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                status, body = standin.token(form, self.headers.get("Authorization"))
                self.reply(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "grant_types_supported": ["password", TOKEN_EXCHANGE],
            # Required of an OpenID provider's metadata (OpenID Connect Discovery §3); the
            # TypeScript SDK's discovery refuses a document without them.
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    def client_authenticated(self, form: dict, authorization: str | None) -> bool:
        if authorization and authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            pair = (urllib.parse.unquote(user), urllib.parse.unquote(password))
        else:
            pair = (form.get("client_id"), form.get("client_secret"))
        return pair == (self.client_id, self.client_secret)

    def token(self, form: dict, authorization: str | None) -> tuple[int, dict]:
        if not self.client_authenticated(form, authorization):
            return 401, {"error": "invalid_client"}
        now = int(time.time())
        grant = form.get("grant_type")
        if grant == "password":
            user = self.users.get(form.get("username", ""))
            if user is None or not secrets.compare_digest(user["password"], form.get("password", "")):
                return 400, {"error": "invalid_grant"}
            id_token = self.idp_key.sign({
                "iss": self.issuer, "sub": user["sub"], "aud": self.client_id, "email": user["email"],
                "groups": user["groups"], "iat": now, "exp": now + 600,
            })
            return 200, {"id_token": id_token, "access_token": secrets.token_urlsafe(16),
                         "token_type": "Bearer", "expires_in": 600}
        if grant != TOKEN_EXCHANGE:
            return 400, {"error": "unsupported_grant_type"}
        if form.get("requested_token_type") != ID_JAG or form.get("subject_token_type") != ID_TOKEN:
            return 400, {"error": "invalid_request", "error_description": "ID token for an ID-JAG only"}
        try:
            person = jwt.decode(form.get("subject_token", ""), self.idp_key.private.public_key(),
                                algorithms=["ES256"], audience=self.client_id, issuer=self.issuer)
        except jwt.PyJWTError as error:
            return 400, {"error": "invalid_grant", "error_description": str(error)}
        # The IdP's policy: this client may reach these resources at that authorization server.
        if form.get("audience") != self.ras_issuer or form.get("resource") not in self.resources:
            return 400, {"error": "invalid_target"}
        claims = {
            "iss": self.issuer, "sub": person["sub"], "email": person["email"], "groups": person["groups"],
            "aud": form["audience"], "resource": form["resource"], "client_id": self.ras_client_id,
            "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 300,
        }
        if form.get("scope"):
            claims["scope"] = form["scope"]
        id_jag = self.idp_key.sign(claims, typ="oauth-id-jag+jwt")
        self.issued.append(id_jag)
        body = {"issued_token_type": ID_JAG, "access_token": id_jag, "token_type": "N_A", "expires_in": 300}
        if form.get("scope"):
            body["scope"] = form["scope"]
        return 200, body

    def service_account_token(self, namespace: str, name: str, audience: str, **changes) -> str:
        """A Kubernetes projected service-account token."""
        now = int(time.time())
        claims = {
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": f"system:serviceaccount:{namespace}:{name}", "aud": [audience],
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}},
            "jti": secrets.token_urlsafe(12), "iat": now, "nbf": now, "exp": now + 600,
        }
        claims.update(changes)
        return self.cluster_key.sign(claims)

    def ci_token(self, audience: str, ref: str = "refs/heads/main") -> str:
        """A GitHub Actions OIDC token of a job in acme/tools."""
        now = int(time.time())
        return self.ci_key.sign({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": f"repo:acme/tools:ref:{ref}", "aud": audience, "repository": "acme/tools",
            "ref": ref, "workflow": "release", "jti": secrets.token_urlsafe(12), "iat": now,
            "exp": now + 300,
        })
