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


class Saas:
    def __init__(self, client_id: str, client_secret: str, *, registration: bool = False,
                 metadata_document: bool = False) -> None:
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
                length = int(self.headers.get("Content-Length", "0"))
                return {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}

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

    def logins_of(self, tokens: list[str]) -> list[str | None]:
        with self.lock:
            return [self.access.get(t) for t in tokens]
