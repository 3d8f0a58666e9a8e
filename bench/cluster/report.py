#!/usr/bin/env python3
"""Writes the three-replica harness's results: a markdown table and a PNG of resident memory.

    report.py WORK_DIR OUTPUT_PREFIX SETTINGS LOAD_BEFORE LOAD_AFTER CORES

Reads load.json, propagation.json, restart.json, soak.json and memory.csv from WORK_DIR
(written by bench/cluster/run.sh); writes OUTPUT_PREFIX.md and OUTPUT_PREFIX-memory.png.
"""
import csv
import json
import sys
from pathlib import Path


def main():
    work, prefix, settings, load_before, load_after, cores = sys.argv[1:7]
    work, prefix = Path(work), Path(prefix)
    runs = {name: json.loads((work / f"{name}.json").read_text())
            for name in ("load", "restart", "soak")}
    propagation = json.loads((work / "propagation.json").read_text())
    with open(work / "memory.csv") as f:
        rows = [[float(v) for v in row] for row in list(csv.reader(f))[1:]]

    lines = [f"# Three replicas ({prefix.name})", "",
             f"Settings: {settings}. Cores: {cores}; load average before {load_before}, "
             f"after {load_after} (other work shares the machine).", "",
             "| phase | seconds | answered | req/s | p50 ms | p99 ms | rate limit admitted ÷ configured "
             "| lost after read | unexpected statuses | retried elsewhere (never read) | sessions reopened |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        rate = run["rate_limit"]
        unexpected = ", ".join(f"{k}: {v}" for k, v in run["unexpected"].items()) or "0"
        lines.append(
            f"| {name} | {run['seconds']:.0f} | {run['answered']} | {run['throughput_per_s']:.0f} "
            f"| {run['p50_ms']:.1f} | {run['p99_ms']:.1f} "
            f"| {rate['admitted']} ÷ {rate['configured']:.1f} = {rate['admitted_over_configured']:.3f} "
            f"| {run['lost']} | {unexpected} | {run['retried_elsewhere']} | {run['sessions_reopened']} |")
    restart = runs["restart"]
    failed = restart["lost"] + sum(restart["unexpected"].values()) + restart["unreachable"]
    lines += ["", f"Rolling restart (each replica SIGTERM, drained, started again, in turn, under "
              f"load): **{failed} accepted requests failed** ({restart['lost']} lost after being "
              f"read, {sum(restart['unexpected'].values())} unexpected statuses, "
              f"{restart['unreachable']} reached no replica); {restart['retried_elsewhere']} "
              "requests no replica had read were sent to the next one.", ""]
    after_return = ", ".join(f"{ms:.1f}" for ms in propagation["refused_ms_after_return"])
    after_start = ", ".join(f"{ms:.1f}" for ms in propagation["refused_ms_after_start"])
    lines += [f"Revocation propagation: `gatehouse keys revoke` took "
              f"{propagation['revoke_command_ms']:.0f} ms; each replica refused the key "
              f"{after_return} ms after it returned ({after_start} ms after it started).", ""]
    if rows:
        first, last = rows[0], rows[-1]
        peak = [max(r[i] for r in rows) for i in (1, 2, 3)]
        lines += ["| replica | RSS at start of soak (MiB) | at end (MiB) | peak (MiB) |",
                  "|---|---|---|---|"]
        for i in range(3):
            lines.append(f"| {i} | {first[i + 1] / 1024:.1f} | {last[i + 1] / 1024:.1f} "
                         f"| {peak[i] / 1024:.1f} |")
        lines.append("")
        plot(rows, prefix.with_name(prefix.name + "-memory.png"), prefix.name)
        lines.append(f"![resident memory]({prefix.name}-memory.png)")
    prefix.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    minutes = [r[0] / 60 for r in rows]
    for i in range(3):
        ax.plot(minutes, [r[i + 1] / 1024 for r in rows], label=f"replica {i}")
    ax.set_xlabel("soak time (min)")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Three replicas under mixed load: resident memory ({title})")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
