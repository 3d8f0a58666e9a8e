"""A small upstream SaaS stand-in on loopback, for per-user delegated tokens end to end.

One HTTP server, two roles:
- its own OAuth authorization server: `GET /authorize` (authorization code + PKCE S256; the
  person "signs in" by the `login` query parameter the test adds, as a browser would after a
  sign-in form), `POST /token` (authorization_code with the verifier, refresh_token; client
  authentication by `client_secret_post`), `POST /revoke` (RFC 7009);
- an MCP server at `/mcp` (Streamable HTTP, JSON responses, no sessions) that takes only its
  own live access tokens and whose tool `whoami` answers `user:<login>`, the person whose token
  the call carried.

For registration found by Gatehouse it also publishes its protected-resource metadata
(RFC 9728, for `/mcp`) and its authorization-server metadata (RFC 8414), and, when asked,
registers clients dynamically (`POST /register`, RFC 7591) or takes client metadata documents
(a client id that is a URL is fetched at `/authorize`; it must name itself and the redirect
URI). The operator's client (`client_id`, `client_secret`) is always known.

When given `trusted_issuer` (Gatehouse's `public_url`) it also takes RFC 8693 token exchange
at `/token` from the operator's client: the subject token must be a JWT signed by a key of the
issuer's JWKS (`{issuer}/oauth/jwks.json`, fetched with PyJWT's key types), with that issuer,
this token endpoint as its audience, `exp`, `iat`, `sub` and a `jti` not seen before; the
person is its `preferred_username`. Errors follow RFC 8693 §2.2.2 and RFC 6749 §5.2: a subject
token that is missing, of another type, unverifiable or unacceptable is `invalid_request` (the
RFC says MUST, not `invalid_grant`), a `resource` or `audience` other than this server's is
`invalid_target`, a scope it does not offer `invalid_scope`, a known client not allowed to
exchange `unauthorized_client`. The answer names `issued_token_type` and `token_type`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# The `typ` of Gatehouse's assertion of a person (docs/upstreams.md, "Identity header").
ASSERTION_TYP = "gatehouse-id+jwt"
SCOPES = {"files"}


class Refused(Exception):
    """A token request refused with an RFC 6749 §5.2 error."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class Saas:
    def __init__(self, client_id: str, client_secret: str, *, registration: bool = False,
                 metadata_document: bool = False, trusted_issuer: str | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # client id -> (secret or None for a public client, registered redirect URIs or None)
        self.clients: dict[str, tuple[str | None, list[str] | None]] = {client_id: (client_secret, None)}
        self.registration = registration
        self.metadata_document = metadata_document
        self.registrations: list[dict] = []
        self.documents_fetched: list[str] = []
        self.lock = threading.Lock()
        self.codes: dict[str, tuple[str, str, str]] = {}
        self.access: dict[str, str] = {}
        self.refresh: dict[str, str] = {}
        self.revoked: list[str] = []
        self.calls: list[str] = []
        # (login, token) of every MCP call, to show whose token each carried.
        self.calls_with_tokens: list[tuple[str, str]] = []
        self.trusted_issuer = trusted_issuer
        # Clients allowed to exchange tokens: the operator's only.
        self.exchange_clients = {client_id}
        self.jwks: jwt.PyJWKSet | None = None
        self.jtis_seen: set[str] = set()
        # Each exchange granted: its subject token's claims, the access token issued, the
        # subject token itself.
        self.exchanges: list[tuple[dict, str, str]] = []
        saas = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def reply(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def form(self) -> dict[str, str]:
                self.form_lists = self.form_all()
                return {k: v[0] for k, v in self.form_lists.items()}

            def form_all(self) -> dict[str, list[str]]:
                length = int(self.headers.get("Content-Length", "0"))
                return parse_qs(self.rfile.read(length).decode())

            def known_redirect(self, client_id: str, redirect_uri: str) -> bool:
                if saas.metadata_document and client_id.startswith("http"):
                    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                    with opener.open(client_id, timeout=10) as answer:
                        document = json.loads(answer.read())
                    with saas.lock:
                        saas.documents_fetched.append(client_id)
                    return document.get("client_id") == client_id and redirect_uri in document.get("redirect_uris", [])
                with saas.lock:
                    entry = saas.clients.get(client_id)
                return entry is not None and (entry[1] is None or redirect_uri in entry[1])

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/oauth-protected-resource/mcp":
                    return self.reply(200, {"resource": f"{saas.url}/mcp", "authorization_servers": [saas.url]})
                if url.path == "/.well-known/oauth-authorization-server":
                    metadata = {
                        "issuer": saas.url, "authorization_endpoint": f"{saas.url}/authorize",
                        "token_endpoint": f"{saas.url}/token", "revocation_endpoint": f"{saas.url}/revoke",
                        "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                        "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
                    }
                    if saas.registration:
                        metadata["registration_endpoint"] = f"{saas.url}/register"
                    if saas.metadata_document:
                        metadata["client_id_metadata_document_supported"] = True
                    return self.reply(200, metadata)
                if url.path != "/authorize":
                    return self.reply(404, {"error": "not_found"})
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if (not self.known_redirect(q.get("client_id", ""), q.get("redirect_uri", ""))
                        or q.get("response_type") != "code"
                        or q.get("code_challenge_method") != "S256" or "login" not in q):
                    return self.reply(400, {"error": "invalid_request"})
                code = secrets.token_urlsafe(16)
                with saas.lock:
                    saas.codes[code] = (q["code_challenge"], q["redirect_uri"], q["login"])
                target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                self.reply(302, None, {"Location": target})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                if path == "/mcp":
                    return self.mcp()
                if path == "/register" and saas.registration:
                    return self.register()
                form = self.form()
                client_id = form.get("client_id", "")
                with saas.lock:
                    entry = saas.clients.get(client_id)
                if entry is None and saas.metadata_document and client_id.startswith("http"):
                    entry = (None, None)  # a metadata document's client is public
                if entry is None or form.get("client_secret") != entry[0]:
                    return self.reply(401, {"error": "invalid_client"})
                if path == "/revoke":
                    with saas.lock:
                        token = form.get("token", "")
                        saas.revoked.append(token)
                        for table in (saas.access, saas.refresh):
                            table.pop(token, None)
                    return self.reply(200, {})
                if path != "/token":
                    return self.reply(404, {"error": "not_found"})
                if form.get("grant_type") == TOKEN_EXCHANGE and saas.trusted_issuer is not None:
                    try:
                        return self.reply(200, saas.exchange(client_id, self.form_lists))
                    except Refused as refused:
                        status = 401 if refused.error == "invalid_client" else 400
                        return self.reply(status, {"error": refused.error,
                                                   "error_description": refused.description})
                with saas.lock:
                    if form.get("grant_type") == "authorization_code":
                        entry = saas.codes.pop(form.get("code", ""), None)
                        if entry is None:
                            return self.reply(400, {"error": "invalid_grant"})
                        challenge, redirect_uri, login = entry
                        computed = base64.urlsafe_b64encode(
                            hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                        if computed != challenge or redirect_uri != form.get("redirect_uri"):
                            return self.reply(400, {"error": "invalid_grant"})
                    elif form.get("grant_type") == "refresh_token":
                        login = saas.refresh.get(form.get("refresh_token", ""))
                        if login is None:
                            return self.reply(400, {"error": "invalid_grant"})
                    else:
                        return self.reply(400, {"error": "unsupported_grant_type"})
                    access = f"saas-at-{secrets.token_urlsafe(12)}"
                    refresh = f"saas-rt-{secrets.token_urlsafe(12)}"
                    saas.access[access] = login
                    saas.refresh[refresh] = login
                self.reply(200, {"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                                 "refresh_token": refresh, "scope": "files"})

            def register(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                method = request.get("token_endpoint_auth_method", "client_secret_basic")
                with saas.lock:
                    saas.registrations.append(request)
                    client_id = f"dyn-{len(saas.registrations)}"
                    secret = None if method == "none" else secrets.token_urlsafe(16)
                    saas.clients[client_id] = (secret, list(request.get("redirect_uris", [])))
                answer = {"client_id": client_id, "token_endpoint_auth_method": method,
                          "redirect_uris": request.get("redirect_uris", [])}
                if secret is not None:
                    answer["client_secret"] = secret
                self.reply(201, answer)

            def mcp(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                message = json.loads(self.rfile.read(length) or b"null")
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                with saas.lock:
                    login = saas.access.get(token)
                    if login is not None:
                        saas.calls_with_tokens.append((login, token))
                if login is None:
                    return self.reply(401, {"error": "invalid_token"},
                                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                if not isinstance(message, dict) or "id" not in message:
                    return self.reply(202)
                method = message.get("method")
                if method == "initialize":
                    result = {"protocolVersion": message["params"]["protocolVersion"],
                              "capabilities": {"tools": {}},
                              "serverInfo": {"name": "saas-standin", "version": "0.0.0"}}
                elif method == "tools/list":
                    result = {"tools": [{"name": "whoami", "description": "whose token this call carried",
                                         "inputSchema": {"type": "object", "properties": {}}}]}
                elif method == "tools/call" and message["params"]["name"] == "whoami":
                    with saas.lock:
                        saas.calls.append(login)
                    result = {"content": [{"type": "text", "text": f"user:{login}"}]}
                elif method == "ping":
                    result = {}
                else:
                    return self.reply(200, {"jsonrpc": "2.0", "id": message["id"],
                                            "error": {"code": -32601, "message": "method not found"}})
                self.reply(200, {"jsonrpc": "2.0", "id": message["id"], "result": result})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def exchange(self, client_id: str, form: dict[str, list[str]]) -> dict:
        """RFC 8693 §2.1–2.2 for an authenticated client: the token response, or `Refused`."""
        one = {k: v[0] for k, v in form.items()}
        if client_id not in self.exchange_clients:
            raise Refused("unauthorized_client", "this client may not exchange tokens")
        for name in ("subject_token", "subject_token_type"):
            if name not in form:
                raise Refused("invalid_request", f"{name} is required")
            if len(form[name]) > 1:
                raise Refused("invalid_request", f"{name} is given more than once")
        if "actor_token" in form or "actor_token_type" in form:
            raise Refused("invalid_request", "delegation (actor_token) is not offered")
        if one["subject_token_type"] != JWT_TYPE:
            raise Refused("invalid_request", "the subject token must be a JWT")
        if one.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise Refused("invalid_request", "only access tokens are issued")
        # The target: every resource (absolute URIs) and audience named must be this server.
        resource = f"{self.url}/mcp"
        if any(r != resource for r in form.get("resource", [])):
            raise Refused("invalid_target", "no such resource here")
        if any(a not in (self.url, resource) for a in form.get("audience", [])):
            raise Refused("invalid_target", "no such audience here")
        requested = set(one.get("scope", "files").split())
        if not requested or not requested <= SCOPES:
            raise Refused("invalid_scope", "scope not offered")
        claims = self.verify_subject(one["subject_token"])
        login = claims.get("preferred_username") or claims["sub"]
        access = f"saas-xt-{secrets.token_urlsafe(12)}"
        with self.lock:
            if claims["jti"] in self.jtis_seen:
                raise Refused("invalid_request", "the subject token was used before")
            self.jtis_seen.add(claims["jti"])
            self.access[access] = login
            self.exchanges.append((claims, access, one["subject_token"]))
        # No refresh token: the client exchanges a fresh assertion instead.
        return {"access_token": access, "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer",
                "expires_in": 3600, "scope": " ".join(sorted(requested))}

    def verify_subject(self, token: str) -> dict:
        """The subject token's claims when the trusted issuer signed it for this token endpoint."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as err:
            raise Refused("invalid_request", f"the subject token is not a JWT: {err}") from err
        if header.get("typ") != ASSERTION_TYP:
            raise Refused("invalid_request", "the subject token is not an identity assertion")
        key = self.signing_key(header.get("kid"))
        try:
            return jwt.decode(token, key.key, algorithms=[key.algorithm_name], issuer=self.trusted_issuer,
                              audience=f"{self.url}/token", leeway=5,
                              options={"require": ["iss", "aud", "exp", "iat", "sub", "jti"]})
        except jwt.InvalidTokenError as err:
            raise Refused("invalid_request", f"the subject token is refused: {type(err).__name__}: {err}") from err

    def signing_key(self, kid: str | None) -> jwt.PyJWK:
        """The issuer's key `kid`, from its JWKS (fetched again once for a key not seen yet)."""
        for fetch in (self.jwks is None, True):
            if fetch:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"{self.trusted_issuer}/oauth/jwks.json", timeout=10) as answer:
                    self.jwks = jwt.PyJWKSet.from_dict(json.loads(answer.read()))
            for key in self.jwks.keys if self.jwks else []:
                if key.key_id == kid:
                    return key
        raise Refused("invalid_request", "the subject token's key is not the issuer's")

    def logins_of(self, tokens: list[str]) -> list[str | None]:
        with self.lock:
            return [self.access.get(t) for t in tokens]
