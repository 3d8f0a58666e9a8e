#!/usr/bin/env python3
"""The MCP conformance suite's authorization-server checks against Gatehouse.

`@modelcontextprotocol/conformance` 0.2.0-alpha.12 (e2e/conformance-auth/package.json) has an
`authorization` command: the metadata scenario reads the RFC 8414 document, and the
authorization-code scenario prints an authorization URL, waits for the browser to come back to
http://127.0.0.1:PORT/callback, then redeems the code. Here the "browser" is
e2e/oauth/browser.py: it follows the printed URL, signs in, approves and GETs the callback.

Usage: conformance_auth.py --node NODE --suite PATH/TO/conformance/dist/index.js
                           --client-id ID --port PORT --out DIR
Environment: E2E_OAUTH_BASE (the issuer), E2E_OAUTH_SERVER (default demo), E2E_OAUTH_USER,
E2E_OAUTH_PASSWORD. Exit status 0 only if the suite passed and no check failed; warnings are
listed (the suite does not count them as failures).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import httpx2
from browser import authorize

URL_WAIT = 60.0  # until the suite prints the authorization URL
SUITE_WAIT = 120.0  # the whole suite run
AUTH_URL = re.compile(r"(https?://\S*[?&]code_challenge=\S*)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--suite", required=True, help="the suite's dist/index.js")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    # An outer `timeout` sends SIGTERM to this process only (the child runs in a session of
    # its own): exit through the `finally` blocks, which stop the child's process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    base = os.environ["E2E_OAUTH_BASE"]
    server = os.environ.get("E2E_OAUTH_SERVER", "demo")
    user = (os.environ["E2E_OAUTH_USER"], os.environ["E2E_OAUTH_PASSWORD"])
    args.out.mkdir(parents=True, exist_ok=True)
    argv = [
        args.node, args.suite, "authorization", "--url", base, "--client-id", args.client_id,
        "--resource", f"{base}/{server}/mcp", "--port", str(args.port), "-o", str(args.out / "results"),
    ]
    print("conformance:", " ".join(argv[2:]), flush=True)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    problems: list[str] = []
    try:
        # The browser step: the first authorization URL the suite prints.
        deadline = time.monotonic() + URL_WAIT
        url = None
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            match = AUTH_URL.search(line)
            if match:
                url = match.group(1)
        if url is None:
            problems.append("the suite printed no authorization URL")
        else:
            async def browse() -> None:
                callback = await authorize(url, *user, log=print)
                print(f"browser: -> {callback.split('?')[0]}", flush=True)
                async with httpx2.AsyncClient(timeout=15, trust_env=False) as http:
                    # The suite starts its callback server right after printing the URL:
                    # poll (bounded) in case the browser was quicker.
                    deadline = time.monotonic() + 15
                    while True:
                        try:
                            response = await http.get(callback)
                            break
                        except httpx2.ConnectError:
                            if time.monotonic() > deadline:
                                raise
                            await anyio.sleep(0.1)
                print(f"browser: callback answered HTTP {response.status_code}", flush=True)

            try:
                anyio.run(browse)
            except Exception as exc:  # noqa: BLE001 - reported as a failure below
                problems.append(f"browser step failed: {type(exc).__name__}: {exc}")
        status = None
        if not problems:  # otherwise the suite would wait minutes for a callback that never comes
            try:
                status = process.wait(timeout=SUITE_WAIT)
            except subprocess.TimeoutExpired:
                problems.append(f"the suite did not finish within {SUITE_WAIT:.0f} s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        reader.join(timeout=5)

    # The checks, from the result files.
    counts: dict[str, int] = {}
    scenarios = set()
    for path in sorted((args.out / "results").glob("*/checks.json")):
        for c in json.loads(path.read_text()):
            counts[c["status"]] = counts.get(c["status"], 0) + 1
            scenarios.add(path.parent.name.rsplit("-", 1)[0])
            if c["status"] not in ("SUCCESS", "INFO"):
                print(f"  {c['status']}: {c['id']}: {c.get('errorMessage') or c.get('description', '')}")
    print(f"conformance authorization: checks by status {dict(sorted(counts.items()))} in {len(scenarios)} result dirs")
    if status not in (0, None):
        problems.append(f"the suite exited with status {status}")
    if counts.get("FAILURE"):
        problems.append(f"{counts['FAILURE']} check(s) failed")
    if not counts.get("SUCCESS"):
        problems.append("no successful check recorded")
    for p in problems:
        print(f"FAIL: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
