#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (the `it` suite twice: SQLite, then
# PostgreSQL), dependency checks (cargo-deny), every
# fuzz target built and run for a bounded time, then the end-to-end tests with real MCP clients
# (TypeScript SDK, Python SDK) and the MCP conformance suite.
# Usage: bash scripts/test-all.sh    (needs cargo-fuzz and cargo-deny; .ci/run installs them)
# FUZZ_SECONDS: seconds per fuzz target (default 60); DENY_ADVISORIES=1 also checks advisories.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format and lints =="
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (unit + integration) =="
cargo test --workspace --locked

echo "== integration suite on PostgreSQL (a server the tests start) =="
# The store contract suite runs on both backends above; this runs every TestApp test again
# with its records and audit trail in PostgreSQL.
GATEHOUSE_TEST_STORE=postgres cargo test -p gatehouse --test it --locked

echo "== dependencies (cargo deny) =="
# Advisories need the RustSec database from GitHub, which CI machines cannot reach.
deny_checks=(bans licenses sources)
[ "${DENY_ADVISORIES:-0}" = 1 ] && deny_checks+=(advisories)
cargo deny --locked check "${deny_checks[@]}"
bash scripts/check-rust-version.sh
bash scripts/check-model-deps.sh

echo "== fuzz targets (build, regression inputs, ${FUZZ_SECONDS:-60}s each) =="
bash scripts/fuzz.sh

echo "== end-to-end =="
bash e2e/run.sh
