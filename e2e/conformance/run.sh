#!/usr/bin/env bash
# Run the MCP conformance suite (@modelcontextprotocol/conformance, pinned in package.json)
# against the bundled example server on an ephemeral loopback port.
#
# Usage: e2e/conformance/run.sh [active|all|pending]     (default: all)
# Environment:
#   NODE        Node.js >= 22 to run the suite with (default: node on PATH)
#   SERVER_BIN  a prebuilt gatehouse-example-server (default: cargo build it)
#   OUT_DIR     where to keep results and server logs (default: a fresh temp dir)
#   MCP_URL     run against this already-running MCP endpoint instead of starting the example
#               server (e.g. a server mounted in Gatehouse: http://127.0.0.1:PORT/conf/mcp)
set -euo pipefail

suite=${1:-all}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
node=${NODE:-node}

major=$("$node" -p 'process.versions.node.split(".")[0]')
if ((major < 22)); then
    echo "error: the conformance suite needs Node.js >= 22 (found $("$node" --version)); set NODE" >&2
    exit 2
fi

suite_js="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [[ ! -f $suite_js ]]; then
    (cd "$here" && npm ci --no-audit --no-fund)
fi

out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out"

url=${MCP_URL:-}
if [[ -z $url ]]; then
    bin=${SERVER_BIN:-}
    if [[ -z $bin ]]; then
        cargo build --quiet --manifest-path "$root/Cargo.toml" -p gatehouse-example-server
        bin="${CARGO_TARGET_DIR:-$root/target}/debug/gatehouse-example-server"
    fi

    "$bin" --listen 127.0.0.1:0 >"$out/server.out" 2>"$out/server.err" &
    server_pid=$!
    trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

    for _ in $(seq 1 100); do
        url=$(sed -n 's/^listening on //p' "$out/server.out")
        [[ -n $url ]] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $url ]]; then
        echo "error: the example server did not start" >&2
        cat "$out/server.err" >&2
        exit 1
    fi
fi

echo "conformance suite '$suite' against $url (results in $out/results)"
timeout 600 "$node" "$suite_js" server --url "$url" --suite "$suite" -o "$out/results"
