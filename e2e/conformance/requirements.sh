#!/usr/bin/env bash
# The MCP conformance suite's requirement sets (`server --requirements REVISION`, only in the
# 0.2.0 pre-release pinned in e2e/conformance-auth) against the bundled example server
# directly and through Gatehouse with the same program run as a stdio child. Fails when a
# scenario passes fewer checks through Gatehouse than directly. Group `conformance-requirements`
# of e2e/run.sh; the figures are recorded in docs/conformance.md.
#
# Usage: e2e/conformance/requirements.sh [REVISION...]   (default: 2025-11-25 2026-07-28)
# Environment:
#   NODE              Node.js >= 22 (default: node on PATH)
#   CARGO_TARGET_DIR  where the debug gatehouse and gatehouse-example-server are (default: target)
#   OUT_DIR           where results and logs go (default: a fresh temp dir)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
node=${NODE:-node}
revisions=("$@")
((${#revisions[@]})) || revisions=(2025-11-25 2026-07-28)
target=${CARGO_TARGET_DIR:-$root/target}
gatehouse_bin="$target/debug/gatehouse"
example_bin="$target/debug/gatehouse-example-server"
suite_js="$root/e2e/conformance-auth/node_modules/@modelcontextprotocol/conformance/dist/index.js"
for f in "$gatehouse_bin" "$example_bin" "$suite_js"; do
    [[ -f $f ]] || { echo "error: $f is missing (cargo build; npm ci in e2e/conformance-auth)" >&2; exit 2; }
done
out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out"
pids=()
cleanup() { for pid in "${pids[@]-}"; do [[ -n $pid ]] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_for_line() { # FILE PATTERN: the rest of the first line starting with PATTERN, within 30 s
    local deadline=$((SECONDS + 30)) line
    while ((SECONDS < deadline)); do
        line=$(sed -n "s/^$2//p" "$1" | head -n1)
        [[ -n $line ]] && { echo "$line"; return 0; }
        sleep 0.1 # polling interval of a bounded wait for a process to say where it listens
    done
    return 1
}

"$example_bin" --listen 127.0.0.1:0 >"$out/example.out" 2>"$out/example.err" &
pids+=($!)
direct=$(wait_for_line "$out/example.out" "listening on ") || { cat "$out/example.err" >&2; exit 1; }

data="$out/data"
"$gatehouse_bin" --data-dir "$data" servers add st-conf --command "$example_bin" --arg --stdio \
    --allow-anonymous >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
gateway="http://127.0.0.1:$port"
# As in e2e/run.sh: the polling scenario's tool answers after 3.5 s.
(cd "$out" && GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_PUBLIC_URL="$gateway" \
    GATEHOUSE_GATEWAY__SSE_POLL_AFTER=1s exec "$gatehouse_bin" --data-dir "$data" serve) \
    >"$out/gatehouse.out" 2>"$out/gatehouse.err" &
pids+=($!)
deadline=$((SECONDS + 30))
until curl -fsS --max-time 2 "$gateway/healthz" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { tail -n 30 "$out/gatehouse.err" >&2; exit 1; }
    sleep 0.1 # polling interval of a bounded wait for health
done

summary() { # DIR: "P passed, F failed, W warnings (S scenarios)"
    python3 - "$1" <<'PY'
import json, pathlib, sys
files = list(pathlib.Path(sys.argv[1]).glob("*/checks.json"))
checks = [c for f in files for c in json.loads(f.read_text())]
count = lambda s: sum(c.get("status") == s for c in checks)
print(f"{count('SUCCESS')} passed, {count('FAILURE')} failed, {count('WARNING')} warnings "
      f"({len(files)} scenarios)")
PY
}

# Scenarios whose checks pass fewer times over stdio than directly, one line each.
shortfalls() { # DIRECT_DIR STDIO_DIR
    python3 - "$1" "$2" <<'PY'
import json, pathlib, re, sys
name = re.compile(r"^(.+?)-\d{4}-\d{2}-\d{2}T")
def passed(d):
    out = {}
    for f in pathlib.Path(d).glob("*/checks.json"):
        m = name.match(f.parent.name)
        key = m.group(1) if m else f.parent.name
        out[key] = out.get(key, 0) + sum(c.get("status") == "SUCCESS" for c in json.loads(f.read_text()))
    return out
direct, stdio = passed(sys.argv[1]), passed(sys.argv[2])
if not direct:
    print("no results from the direct run")
for scenario, want in sorted(direct.items()):
    got = stdio.get(scenario, 0)
    if got < want:
        print(f"{scenario}: {got} of {want} checks pass over stdio")
PY
}

status=0
for revision in "${revisions[@]}"; do
    for run in "direct $direct" "stdio $gateway/st-conf/mcp"; do
        read -r label url <<<"$run"
        dir="$out/$revision-$label"
        timeout 900 "$node" "$suite_js" server --url "$url" --requirements "$revision" -o "$dir" \
            >"$dir.log" 2>&1 || true
        echo "$revision $label: $(summary "$dir")"
    done
    short=$(shortfalls "$out/$revision-direct" "$out/$revision-stdio")
    if [[ -n $short ]]; then
        echo "$revision: fewer checks pass through Gatehouse over stdio than directly:"
        echo "$short"
        status=1
    fi
done
echo "results in $out"
exit "$status"
