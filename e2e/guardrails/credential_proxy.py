#!/usr/bin/env python3
"""A loopback reverse proxy that adds `Authorization: Bearer <key>` to every request and streams
the answers back unchanged: for clients that cannot send credentials (the conformance suite),
so that they can use a Gatehouse connection that does not see every tool.

Usage: credential_proxy.py TARGET_BASE_URL   (the key in $E2E_PROXY_KEY)
Prints `listening on http://127.0.0.1:PORT` once it accepts connections. Standard library only.
"""

from __future__ import annotations

import http.client
import http.server
import os
import sys
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    target: urllib.parse.SplitResult
    key: str

    def forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=600)
        try:
            # The client's Host and Accept-Encoding go through as they are.
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP | {"authorization", "content-length"}:
                    upstream.putheader(name, value)
            upstream.putheader("Authorization", f"Bearer {self.key}")
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            bodiless = response.status in (204, 304) or self.command == "HEAD"
            if not bodiless:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not bodiless:
                # Chunk by chunk, as it arrives: SSE events must not wait for the stream's end.
                while chunk := response.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            upstream.close()

    do_GET = do_POST = do_DELETE = forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


def main() -> None:
    if len(sys.argv) != 2 or not os.environ.get("E2E_PROXY_KEY"):
        sys.exit("usage: E2E_PROXY_KEY=... credential_proxy.py TARGET_BASE_URL")
    Handler.target = urllib.parse.urlsplit(sys.argv[1])
    Handler.key = os.environ["E2E_PROXY_KEY"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
