#!/usr/bin/env bash
# gatehouse-model is the bottom layer: plain values, no I/O. Its normal dependency tree must
# not reach an async runtime, an HTTP server or client, a database or the crypto the library
# uses; the compiler keeps the library out of it, this keeps the I/O out.
set -euo pipefail
cd "$(dirname "$0")/.."
tree="$(cargo tree --locked -p gatehouse-model -e normal --prefix none --format '{p}')"
forbidden='^(tokio|tokio-util|axum|hyper|hyper-util|http-body|sqlx|sqlx-[a-z-]+|rusqlite|ring|rsa|reqwest|gatehouse) '
if found="$(grep -E "$forbidden" <<<"$tree")"; then
  echo "gatehouse-model must do no I/O, but depends on:" >&2
  sed "s/ (\*)$//" <<<"$found" | sort -u >&2
  exit 1
fi
echo "gatehouse-model: no I/O crates among its $(sort -u <<<"$tree" | wc -l) dependencies"
