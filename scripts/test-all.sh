#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, then the end-to-end tests with real
# MCP clients (TypeScript SDK, Python SDK) and the MCP conformance suite.
# Usage: bash scripts/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format and lints =="
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (unit + integration) =="
cargo test --workspace --locked

echo "== end-to-end =="
bash e2e/run.sh
