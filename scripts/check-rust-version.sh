#!/usr/bin/env bash
# The workspace's `rust-version` must be at least every locked dependency's: a lower one
# promises builds on compilers that cannot build the dependencies. (Standard library APIs
# newer than it are caught by clippy's `incompatible_msrv` lint.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --locked --format-version 1 | python3 -c '
import json, sys

def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
resolved = {node["id"] for node in meta["resolve"]["nodes"]}
members = set(meta["workspace_members"])
declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(declared) != 1 or None in declared:
    sys.exit(f"workspace crates declare rust-version {sorted(map(str, declared))}; want one")
declared = declared.pop()
needs = [
    (version(p["rust_version"]), p["name"], p["version"])
    for p in meta["packages"]
    if p["id"] in resolved and p["id"] not in members and p.get("rust_version")
]
need, name, at = max(needs)
if version(declared) < need:
    wanted = ".".join(map(str, need))
    sys.exit(f"rust-version {declared} is below {wanted}, which {name} {at} needs")
print(f"rust-version {declared}: every dependency builds with it (highest: {name} {at})")
'
