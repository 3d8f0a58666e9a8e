#!/usr/bin/env python3
"""End-to-end: mcp-remote (npm, pinned in e2e/mcp-remote/package.json) through Gatehouse.

mcp-remote is a stdio-to-Streamable-HTTP proxy with its own OAuth client (the bundled
`@modelcontextprotocol/client` v2): on the gateway's 401 it discovers the metadata, registers
itself (RFC 7591), starts a callback server on a loopback port and opens the authorization URL
with the `open` package. Headless, `open` runs its bundled `xdg-open`, which honours `BROWSER`:
that is pointed at a wrapper around e2e/oauth/browser.py, which signs in, approves and GETs the
callback URL, the step a person's browser would do. This script plays the MCP host on stdio:
JSON-RPC lines for initialize, tools/list and tools/call, with bounded waits.

Run 1 starts from an empty credential store (MCP_REMOTE_CONFIG_DIR, a temp dir) and must use
the browser exactly once. Run 2 reuses the store and must not open the browser at all. Before
run 3 the stored access token is revoked (RFC 7009, as the public client itself): mcp-remote
meets a 401 and must recover with its refresh token, again without the browser. Before run 4
the store is made stale, as if the authorization server had forgotten the registration (its
client_id replaced by an unknown one, the tokens gone): mcp-remote's preflight of the
authorization URL (`Accept: application/json`) must get `invalid_client`, drop the
registration and never send the browser to the unknown client; run 5 then registers afresh
and uses the browser once more.

Usage: mcp_remote_test.py --node NODE --proxy PATH/TO/mcp-remote/dist/proxy.js
Environment: E2E_OAUTH_BASE, E2E_OAUTH_SERVER (default demo), E2E_OAUTH_USER,
E2E_OAUTH_PASSWORD, E2E_OAUTH_USER_TOOLS (default echo,add). Exit status 0 only if all passed.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEP_TIMEOUT = 60.0  # one JSON-RPC answer, the first one including the whole OAuth flow
AUTH_TIMEOUT = 45  # mcp-remote's own wait for the callback (--auth-timeout)
STALE_WAIT = 20.0  # until mcp-remote drops a registration the server does not know


DESKTOP_ENV = {
    "DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION",
    "KDE_FULL_SESSION", "GNOME_DESKTOP_SESSION_ID", "MATE_DESKTOP_SESSION_ID", "LXQT_SESSION_CONFIG",
    "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)
    print(f"  ok: {message}")


class Proxy:
    """One mcp-remote process with line-based JSON-RPC over its stdio."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_file = open(stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_file, env=env,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.next_id = 1

    def _read(self) -> None:
        assert self.process.stdout
        for raw in self.process.stdout:
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def send(self, message: dict) -> None:
        assert self.process.stdin
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def request(self, method: str, params: dict | None = None) -> dict:
        request_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"no answer to {method} within {STEP_TIMEOUT:.0f} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise Failure(f"mcp-remote exited (status {self.process.poll()}) before answering {method}")
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                print(f"  (non-JSON on stdout: {line.strip()[:200]})")
                continue
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise Failure(f"{method} failed: {message['error']}")
                return message["result"]
            # Requests or notifications from the server side (e.g. logging): not ours.

    def stop(self, grace: float = 5.0) -> None:
        """Closes stdin (mcp-remote then shuts down), waits `grace` seconds, then terminates."""
        try:
            if self.process.stdin:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            # Our own process group (start_new_session): mcp-remote and any child of it.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.stderr_file.close()


FORGOTTEN = "dcr_forgottenforgotten"


def forget_registration(config_dir: Path) -> None:
    """Makes the stored registration one the authorization server does not know."""
    info = next(config_dir.rglob("*_client_info.json"))
    client = json.loads(info.read_text())
    client["client_id"] = FORGOTTEN
    info.write_text(json.dumps(client))
    for tokens in config_dir.rglob("*_tokens.json"):
        tokens.unlink()
    print("  (stored registration replaced by an unknown client_id, tokens removed)")


def revoke_stored_token(base: str, url: str, config_dir: Path) -> str:
    """Revokes the access token mcp-remote stored (as the public client it registered)."""
    tokens = json.loads(next(config_dir.rglob("*_tokens.json")).read_text())
    client = json.loads(next(config_dir.rglob("*_client_info.json")).read_text())
    body = urllib.parse.urlencode({"token": tokens["access_token"], "client_id": client["client_id"]}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/oauth/revoke", data=body), timeout=15) as response:
        check(response.status == 200, "revocation answered 200")
    check(gateway_status(url, tokens["access_token"]) == 401, "the revoked token is refused by the gateway (401)")
    return tokens["access_token"]


def gateway_status(url: str, token: str) -> int:
    """The status of a bare initialize POST with the token."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}).encode()
    request = urllib.request.Request(url, data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def session(proxy: Proxy, server: str, tools: list[str], label: str) -> None:
    init = proxy.request(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "gatehouse-e2e-host", "version": "0"}},
    )
    check("serverInfo" in init and "tools" in init.get("capabilities", {}), f"{label}: initialize answered ({init.get('protocolVersion')})")
    proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    listed = proxy.request("tools/list")
    names = sorted(t["name"] for t in listed["tools"])
    check(names == tools, f"{label}: tools/list is the user's grant {names}")
    called = proxy.request("tools/call", {"name": "echo", "arguments": {"text": f"via mcp-remote ({label})"}})
    text = "".join(c.get("text", "") for c in called.get("content", []))
    check(text == f"via mcp-remote ({label})" and not called.get("isError"), f"{label}: tools/call echo -> {text!r}")
    called = proxy.request("tools/call", {"name": "add", "arguments": {"a": 20, "b": 22}})
    text = "".join(c.get("text", "") for c in called.get("content", []))
    check(text == "42", f"{label}: tools/call add -> {text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--proxy", required=True, help="mcp-remote's dist/proxy.js")
    parser.add_argument("--keep", help="directory for logs (default: a temp dir, removed)")
    args = parser.parse_args()
    # An outer `timeout` sends SIGTERM to this process only (the child runs in a session of
    # its own): exit through the `finally` blocks, which stop the child's process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    base = os.environ["E2E_OAUTH_BASE"]
    server = os.environ.get("E2E_OAUTH_SERVER", "demo")
    tools = sorted(t.strip() for t in os.environ.get("E2E_OAUTH_USER_TOOLS", "echo,add").split(","))
    url = f"{base}/{server}/mcp"

    with tempfile.TemporaryDirectory(prefix="gatehouse-mcp-remote.") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config_dir = work / "mcp-auth"
        config_dir.mkdir(exist_ok=True)
        trace = work / "browser.trace"
        trace.touch()
        browser_log = work / "browser.log"
        # The BROWSER wrapper: xdg-open runs `$BROWSER URL`.
        wrapper = work / "browser.sh"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec {shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'browser.py'))} --verbose --deliver \"$1\" "
            f">>{shlex.quote(str(browser_log))} 2>&1\n"
        )
        wrapper.chmod(0o755)

        port = free_port()
        # Nothing that would let xdg-open find a desktop (and a real browser): it must take its
        # generic path, which runs $BROWSER.
        env = {k: v for k, v in os.environ.items() if k not in DESKTOP_ENV}
        env.update(
            BROWSER=str(wrapper),
            MCP_REMOTE_CONFIG_DIR=str(config_dir),
            E2E_BROWSER_LOG=str(trace),
            NO_PROXY="localhost,127.0.0.1",
        )
        argv = [args.node, args.proxy, url, str(port), "--transport", "http-only", "--auth-timeout", str(AUTH_TIMEOUT)]
        failures = 0

        def opened_since(mark: int) -> list[str]:
            return trace.read_text().splitlines()[mark:]

        def stored_client() -> str | None:
            info = next(config_dir.rglob("*_client_info.json"), None)
            return json.loads(info.read_text()).get("client_id") if info else None

        def full_run(run: int) -> None:
            label = f"run {run}"
            mark = len(opened_since(0))
            proxy = Proxy(argv, env, work / f"mcp-remote-{run}.err")
            try:
                session(proxy, server, tools, label)
            finally:
                proxy.stop()
            opened = opened_since(mark)
            if run in (1, 5):
                check(len(opened) == 1 and opened[0].endswith("exit=0"), f"{label}: the browser was opened once and succeeded")
                stored = sorted(p.name for p in config_dir.rglob("*") if p.is_file())
                check(any(n.endswith("_tokens.json") for n in stored) and any(n.endswith("_client_info.json") for n in stored),
                      f"{label}: client registration and tokens stored {stored}")
                client = stored_client() or ""
                check(client.startswith("dcr_") and client != FORGOTTEN, f"{label}: registered dynamically as {client}")
            else:
                check(not opened, f"{label}: stored tokens reused, no browser")

        def stale_run(run: int) -> None:
            """mcp-remote meets a registration the server does not know. Its preflight of the
            authorization URL (Accept: application/json) must get `invalid_client`, so that it
            drops the registration instead of sending the user to a dead end. (0.15.1 then
            suppresses its own retried sign-in - "A sign-in for this server is already under
            way" - because its pending-flow record keeps the first PKCE challenge; the next
            start registers afresh, which run 5 checks. Either way, no browser for the dead
            client.)"""
            label = f"run {run}"
            mark = len(opened_since(0))
            proxy = Proxy(argv, env, work / f"mcp-remote-{run}.err")
            try:
                proxy.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "gatehouse-e2e-host", "version": "0"}}})
                deadline = time.monotonic() + STALE_WAIT
                while stored_client() == FORGOTTEN and time.monotonic() < deadline:
                    time.sleep(0.1)  # polling interval of a bounded wait for a condition
                check(stored_client() != FORGOTTEN, f"{label}: the unknown registration was discarded")
            finally:
                proxy.stop(grace=0.5)  # it waits for a sign-in that will not come
            dead = [line for line in opened_since(mark) if f"client_id={FORGOTTEN} " in line]
            check(not dead, f"{label}: the browser was not sent to the unknown client")

        for run in (1, 2, 3, 4, 5):
            print(f"run {run}: {' '.join(shlex.quote(a) for a in argv[1:])}")
            try:
                if run == 3:
                    revoked = revoke_stored_token(base, url, config_dir)
                if run == 4:
                    forget_registration(config_dir)
                    stale_run(run)
                    continue
                full_run(run)
                if run == 3:
                    tokens = json.loads(next(config_dir.rglob("*_tokens.json")).read_text())
                    check(tokens["access_token"] != revoked, f"run {run}: a new access token after the 401 (refreshed)")
            except Failure as failure:
                failures += 1
                print(f"  FAIL: {failure}")
                for name in (f"mcp-remote-{run}.err", "browser.log"):
                    path = work / name
                    if path.exists():
                        print(f"--- {name} (last 40 lines)")
                        print("\n".join(path.read_text(errors="replace").splitlines()[-40:]))
                break
        print("mcp-remote: " + ("all checks passed" if not failures else "FAILED"))
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
