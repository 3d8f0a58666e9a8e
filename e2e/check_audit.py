#!/usr/bin/env python3
"""Check that the audit trail recorded what the e2e clients did, and never a secret.

Usage: check_audit.py [--timeout SECONDS] [--expect clients|anonymous]... [--secret-env VAR]...
                      [--log FILE]... -- COMMAND...

COMMAND prints the audit rows as JSON (e.g. `gatehouse --output json audit query --limit 100000`).
It is re-run until every expectation holds or the timeout passes (the gateway writes audit
events asynchronously). Expectations:
  clients (the SDK tests ran; server `demo`, client `e2e-client`):
  - an allowed tools/call of `echo` (HTTP 200)
  - a denied tools/call of `delete_records` with reason `tool_not_granted` (HTTP 403)
  - a denied request with reason `missing_credential` (HTTP 401)
  - a denied request with reason `invalid_credential` (HTTP 401)
  anonymous (the conformance suite ran through the gateway):
  - an allowed anonymous request on the server `conf`
and always: no secret (the values of the --secret-env variables) appears in the audit rows or in any
--log file. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def expectations(groups: list[str]) -> list[tuple[str, object]]:
    def has(**want):
        return lambda row: all(row.get(k) == v for k, v in want.items())

    clients = [
        ("allowed tools/call echo by e2e-client on demo",
         has(server="demo", client="e2e-client", rpc_method="tools/call", tool="echo", decision="allow", status=200)),
        ("denied tools/call delete_records (tool_not_granted, 403)",
         has(server="demo", client="e2e-client", rpc_method="tools/call", tool="delete_records",
             decision="deny", reason="tool_not_granted", status=403)),
        ("denied request without a key (missing_credential, 401)",
         has(server="demo", decision="deny", reason="missing_credential", status=401)),
        ("denied request with an unknown key (invalid_credential, 401)",
         has(server="demo", decision="deny", reason="invalid_credential", status=401)),
    ]
    anonymous = [("allowed anonymous request on conf", has(server="conf", client=None, decision="allow"))]
    return (clients if "clients" in groups else []) + (anonymous if "anonymous" in groups else [])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--expect", action="append", default=[], choices=["clients", "anonymous"])
    parser.add_argument("--secret-env", action="append", default=[])
    parser.add_argument("--log", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command that prints the audit rows after --")
    secrets = [os.environ[name] for name in args.secret_env if os.environ.get(name)]

    deadline = time.monotonic() + args.timeout
    while True:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        missing: list[str] = []
        rows: list[dict] = []
        if proc.returncode != 0:
            missing = [f"audit command failed ({proc.returncode}): {proc.stderr.strip()}"]
        else:
            try:
                rows = json.loads(proc.stdout)
            except json.JSONDecodeError as err:
                missing = [f"audit output is not JSON: {err}"]
            else:
                missing = [name for name, match in expectations(args.expect) if not any(match(r) for r in rows)]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.25)  # polling interval while waiting for the condition, bounded by --timeout

    problems = [f"missing audit event: {m}" for m in missing]
    for secret in secrets:
        if secret in proc.stdout:
            problems.append("a secret appears in the audit trail")
        for log in args.log:
            try:
                with open(log, encoding="utf-8", errors="replace") as f:
                    if secret in f.read():
                        problems.append(f"a secret appears in {os.path.basename(log)}")
            except OSError as err:
                problems.append(f"cannot read {log}: {err}")

    decisions: dict[str, int] = {}
    for row in rows:
        key = f"{row.get('server')}/{row.get('decision')}/{row.get('reason') or '-'}/{row.get('status')}"
        decisions[key] = decisions.get(key, 0) + 1
    print(f"audit: {len(rows)} events; by server/decision/reason/status:")
    for key in sorted(decisions):
        print(f"  {key}: {decisions[key]}")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("audit trail: all expected events present, no secret recorded")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
