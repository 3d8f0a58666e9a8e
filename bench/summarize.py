#!/usr/bin/env python3
"""Summarise a bench/run.sh raw file as markdown: medians per target and same-run ratios.

Usage: python3 bench/summarize.py bench/results/<timestamp>.raw

Ratios are computed per round (gatehouse and its reference measured minutes apart in the
same round) and the median of those per-round ratios is reported; on a noisy machine that
is steadier than a ratio of medians, which is shown alongside.
"""

import statistics
import sys
from collections import defaultdict

ERR_KEYS = ("err_status", "err_conn", "err_read", "err_timeout")
PAIRS = (("gatehouse", "miniproxy"), ("governed", "miniproxy"), ("gatehouse", "direct"),
         ("governed", "gatehouse"), ("miniproxy", "direct"), ("token", "miniproxy"),
         ("token", "oidc"), ("jwt", "miniproxy"), ("jwt", "gatehouse"), ("alt", "miniproxy"),
         ("alt", "gatehouse"), ("stdio", "gatehouse"), ("stdio", "miniproxy"))
TARGET_ORDER = ("direct", "miniproxy", "gatehouse", "stdio", "alt", "governed", "jwt", "token", "oidc")


def parse(path):
    meta, rows = "", []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("META "):
                meta = line[5:].strip()
            if not line.startswith("DATA "):
                continue
            row = {}
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                row[key] = value
            for key in ("round", "t", "c", "cpu_ticks", "clk_tck", "reqs", "p50_us", "p99_us", *ERR_KEYS):
                row[key] = int(row.get(key, 0))
            for key in ("rps", "mean_us", "dur_us"):
                row[key] = float(row.get(key, 0))
            row["cpu_us_per_req"] = (
                row["cpu_ticks"] * 1e6 / row["clk_tck"] / row["reqs"] if row["reqs"] and row["clk_tck"] else None
            )
            rows.append(row)
    return meta, rows


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    meta, rows = parse(sys.argv[1])
    if not rows:
        sys.exit("no DATA lines in " + sys.argv[1])

    loads = sorted({(r["t"], r["c"]) for r in rows}, key=lambda tc: tc[1])
    targets = [t for t in TARGET_ORDER if any(r["target"] == t for r in rows)]
    by = defaultdict(list)  # (t, c, target) -> rows
    for r in rows:
        by[(r["t"], r["c"], r["target"])].append(r)

    out = []
    out.append(f"Run: `{meta}`\n")
    out.append("### Medians per target\n")
    out.append("| load | target | runs | req/s | p50 µs | p99 µs | CPU µs/req (target process) | non-2xx | socket errors |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for t, c in loads:
        for target in targets:
            rs = by.get((t, c, target), [])
            if not rs:
                continue
            out.append(
                f"| -t{t} -c{c} | {target} | {len(rs)} | {fmt(med(r['rps'] for r in rs))} "
                f"| {fmt(med(r['p50_us'] for r in rs))} | {fmt(med(r['p99_us'] for r in rs))} "
                f"| {fmt(med(r['cpu_us_per_req'] for r in rs), 1)} "
                f"| {sum(r['err_status'] for r in rs)} "
                f"| {sum(r['err_conn'] + r['err_read'] + r['err_timeout'] for r in rs)} |"
            )

    out.append("\n### Ratios (median of per-round ratios; ratio of medians in brackets)\n")
    out.append("| load | pair | req/s | p50 | p99 | CPU/req | Δp50 µs |")
    out.append("|---|---|---:|---:|---:|---:|---:|")
    for t, c in loads:
        for a, b in PAIRS:
            if not by.get((t, c, a)) or not by.get((t, c, b)):
                continue
            rounds_a = {r["round"]: r for r in by[(t, c, a)]}
            rounds_b = {r["round"]: r for r in by[(t, c, b)]}
            common = sorted(set(rounds_a) & set(rounds_b))

            def ratio(key):
                per_round = [
                    rounds_a[i][key] / rounds_b[i][key]
                    for i in common
                    if rounds_a[i][key] and rounds_b[i][key]
                ]
                ma, mb = med(r[key] for r in by[(t, c, a)]), med(r[key] for r in by[(t, c, b)])
                of_medians = ma / mb if ma and mb else None
                return f"{fmt(med(per_round), 2)}× ({fmt(of_medians, 2)}×)"

            delta = med(rounds_a[i]["p50_us"] - rounds_b[i]["p50_us"] for i in common)
            out.append(
                f"| -t{t} -c{c} | {a}/{b} | {ratio('rps')} | {ratio('p50_us')} | {ratio('p99_us')} "
                f"| {ratio('cpu_us_per_req')} | {fmt(delta)} |"
            )

    head = []
    for t, c in loads:
        key, label = ("p50_us", "p50") if c == 1 else ("rps", "req/s")
        for a, b in PAIRS[:3] + PAIRS[5:]:
            rounds_a = {r["round"]: r for r in by.get((t, c, a), [])}
            rounds_b = {r["round"]: r for r in by.get((t, c, b), [])}
            per_round = [
                rounds_a[i][key] / rounds_b[i][key]
                for i in sorted(set(rounds_a) & set(rounds_b))
                if rounds_a[i][key] and rounds_b[i][key]
            ]
            if per_round:
                head.append(f"{label} at c={c}: {a}/{b} = {med(per_round):.2f}×")
    if head:
        out.append("\nHeadline: " + "; ".join(head) + ".")

    errors = sum(r[k] for r in rows for k in ERR_KEYS)
    if errors:
        out.append(f"\n**Warning: {errors} errors counted by wrk (non-2xx or socket errors); see the raw file.**")
    print("\n".join(out))


if __name__ == "__main__":
    main()
