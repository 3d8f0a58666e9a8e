#!/usr/bin/env python3
"""Compare two runs of the MCP conformance suite scenario by scenario, check by check.

Each run is a results directory written by the suite's `-o DIR`: one sub-directory per scenario,
named `server-<scenario>-<timestamp>`, holding `checks.json` (a list of checks with `id`,
`status` — SUCCESS, FAILURE, WARNING, INFO, … — and on failure `errorMessage`).

Usage:
    compare.py DIRECT_RESULTS GATEWAY_RESULTS [--labels direct,gateway] [--markdown FILE]

Prints a per-scenario table (and writes it as Markdown with --markdown), then every check whose
status differs, with the messages from checks.json. Exit status: 0 when every scenario has the
same checks with the same statuses in both runs, 1 otherwise, 2 on bad input.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

SCENARIO_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:-\d+)?Z$")


def load_run(results: Path) -> dict[str, list[dict]]:
    """Scenario name -> its checks (the newest directory wins if a scenario ran twice)."""
    if not results.is_dir():
        raise SystemExit(f"error: {results} is not a directory")
    runs: dict[str, tuple[str, list[dict]]] = {}
    # In the order the suite ran them (the timestamp suffix), which is also the summary's order.
    for sub in sorted(results.iterdir(), key=lambda p: p.name[-24:]):
        match = SCENARIO_DIR.match(sub.name)
        checks_file = sub / "checks.json"
        if not match or not checks_file.is_file():
            continue
        try:
            checks = json.loads(checks_file.read_text())
        except json.JSONDecodeError as err:
            checks = [{"id": "(checks.json)", "status": "UNREADABLE", "errorMessage": str(err)}]
        name = match["name"]
        if name not in runs or sub.name[-24:] > runs[name][0][-24:]:
            runs[name] = (sub.name, checks)
    return {name: checks for name, (_, checks) in runs.items()}


def counts(checks: list[dict] | None) -> str:
    if checks is None:
        return "missing"
    c = Counter(ch.get("status", "?") for ch in checks)
    text = f"{c.pop('SUCCESS', 0)} passed, {c.pop('FAILURE', 0)} failed"
    c.pop("INFO", None)
    extra = ", ".join(f"{n} {s.lower()}" for s, n in sorted(c.items()))
    return f"{text}, {extra}" if extra else text


def verdict_key(checks: list[dict] | None) -> Counter | None:
    """What must be identical: each non-INFO check id with its status (INFO checks are logs)."""
    if checks is None:
        return None
    return Counter((ch.get("id"), ch.get("status")) for ch in checks if ch.get("status") != "INFO")


def message(check: dict | None) -> str:
    if check is None:
        return "(check absent)"
    text = check.get("errorMessage") or ""
    details = check.get("details")
    if details and check.get("status") not in ("SUCCESS", "INFO"):
        detail_text = json.dumps(details, ensure_ascii=False, sort_keys=True)
        if len(detail_text) > 600:
            detail_text = detail_text[:600] + "…"
        text = f"{text} details={detail_text}" if text else f"details={detail_text}"
    return text.replace("\n", " ").replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--labels", default="direct,gateway")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    label_a, label_b = (args.labels.split(",") + ["second"])[:2]

    run_a, run_b = load_run(args.first), load_run(args.second)
    if not run_a and not run_b:
        print("error: no scenario results found in either directory", file=sys.stderr)
        return 2
    order = list(run_a) + [name for name in run_b if name not in run_a]

    rows = [f"| scenario | {label_a} | {label_b} | same |", "|---|---|---|---|"]
    diffs: list[str] = []
    differing = 0
    for name in order:
        a, b = run_a.get(name), run_b.get(name)
        same = verdict_key(a) == verdict_key(b)
        differing += not same
        rows.append(f"| {name} | {counts(a)} | {counts(b)} | {'yes' if same else '**NO**'} |")
        if same:
            continue
        by_id_a = {ch.get("id"): ch for ch in a or []}
        by_id_b = {ch.get("id"): ch for ch in b or []}
        for check_id in list(by_id_a) + [i for i in by_id_b if i not in by_id_a]:
            ca, cb = by_id_a.get(check_id), by_id_b.get(check_id)
            sa = ca.get("status") if ca else "absent"
            sb = cb.get("status") if cb else "absent"
            if sa == sb or "INFO" in (sa, sb):
                continue
            diffs.append(
                f"| {name} | {check_id} | {sa} | {sb} | {message(cb)} |"
            )
        if a is None or b is None:
            missing = label_a if a is None else label_b
            diffs.append(f"| {name} | (whole scenario) | {'absent' if a is None else 'ran'} | "
                         f"{'absent' if b is None else 'ran'} | no results in the {missing} run |")

    total = [f"| **total** | {summary(run_a)} | {summary(run_b)} | "
             f"{'yes' if differing == 0 else f'**{differing} differ**'} |"]
    lines = [f"## Conformance: {label_a} vs {label_b}", "", *rows, *total, ""]
    if diffs:
        lines += [
            f"### Checks whose status differs ({label_b} message)",
            "",
            f"| scenario | check | {label_a} | {label_b} | message |",
            "|---|---|---|---|---|",
            *diffs,
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    print(
        f"conformance comparison: {len(order) - differing} of {len(order)} scenarios identical"
        + ("" if differing == 0 else f", {differing} differ")
    )
    return 0 if differing == 0 else 1


def summary(run: dict[str, list[dict]]) -> str:
    return counts([ch for checks in run.values() for ch in checks])


if __name__ == "__main__":
    sys.exit(main())
