#!/usr/bin/env bash
# Builds every fuzz target, replays the regression inputs, then fuzzes each target for a
# bounded time. Part of scripts/test-all.sh; see docs/fuzzing.md.
# Usage: bash scripts/fuzz.sh [TARGET...]     (default: every target in fuzz/Cargo.toml)
# Environment: FUZZ_SECONDS (per target, default 60; 0 = build and replay only),
#              FUZZ_CACHE (target dir, grown corpora and crash inputs; outside the clone).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install --locked cargo-fuzz (or run .ci/run)" >&2
  exit 1
fi

seconds="${FUZZ_SECONDS:-60}"
cache="${FUZZ_CACHE:-$HOME/.cache/gatehouse/fuzz}"
mkdir -p "$cache"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# No sanitizer: gatehouse forbids unsafe code, the assertions in the targets are the oracle,
# and without AddressSanitizer the targets run about ten times faster. It also needs no
# nightly flags, so a stable compiler builds the targets as it is.
fuzz=(cargo fuzz)
opts=(-s none --target-dir "$cache/target")

log="$cache/last-run.log"
# Runs a cargo-fuzz command with its output in $log: libFuzzer's progress lines are many.
quiet() {
  if ! "${fuzz[@]}" "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    return 1
  fi
}

echo "-- build: ${targets[*]}"
"${fuzz[@]}" build "${opts[@]}"

for target in "${targets[@]}"; do
  [ -d "regressions/$target" ] || continue
  mapfile -t inputs < <(find "regressions/$target" -type f | sort)
  echo "-- $target: replaying ${#inputs[@]} regression inputs"
  # Files (not directories) are run once each, without fuzzing.
  quiet run "${opts[@]}" "$target" "${inputs[@]}" || {
    echo "fuzz target $target fails on a regression input" >&2
    exit 1
  }
done

[ "$seconds" -gt 0 ] || exit 0
for target in "${targets[@]}"; do
  corpus="$cache/corpus/$target"
  artifacts="$cache/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "-- $target: fuzzing for ${seconds}s"
  # New inputs go to the first corpus directory (in the cache); the seeds are only read.
  quiet run "${opts[@]}" "$target" "$corpus" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" || {
    echo "fuzz target $target failed; the input is in $artifacts" >&2
    exit 1
  }
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" "$log" | tr '\n' ' '
  echo
done
