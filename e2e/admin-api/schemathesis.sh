#!/usr/bin/env bash
# Schemathesis against a running Gatehouse's admin API: the OpenAPI document it serves drives
# generated requests (valid and invalid) to every operation, with an admin token; any finding
# fails the run. Checks: no 5xx (not_a_server_error), every response matches its schema
# (response_schema_conformance) and is a documented status (status_code_conformance), and no
# operation answers without the token (ignored_auth). Left out: revoking admin tokens, which
# would revoke the run's own token as soon as it learns its id from the list.
#
# Usage: e2e/admin-api/schemathesis.sh GATEHOUSE_BIN PYTHON WORK_DIR
#   PYTHON: a Python with schemathesis installed (e2e/run.sh's venv)
# Environment: ADMIN_API_EXAMPLES (examples per operation, default 30).
set -euo pipefail

gatehouse_bin=$1
python=$2
work=$3
data="$work/data"
mkdir -p "$work"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
gh() { (cd "$work" && "$gatehouse_bin" --data-dir "$data" "$@"); }

gh --output json admin-tokens create --name schemathesis --role admin >"$work/token.json"
token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$work/token.json")
[[ $token == gth_* ]] || { echo "admin-tokens create printed no token" >&2; exit 1; }
# Something to read: a server, a client with a key and a connection, a policy.
gh servers add seed --url http://127.0.0.1:9/mcp >/dev/null
gh clients create seed-client >/dev/null
gh connections grant --client seed-client --server seed --tools '*' >/dev/null
gh keys create --client seed-client >/dev/null

port=$(free_port)
admin_port=$(free_port)
admin="http://127.0.0.1:$admin_port"
(cd "$work" && GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_PUBLIC_URL="http://127.0.0.1:$port" \
    GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    GATEHOUSE_GATEWAY__UPSTREAM_TIMEOUT=2s GATEHOUSE_GATEWAY__UPSTREAM_CONNECT_TIMEOUT=1s \
    GATEHOUSE_HTTP__LOGIN_MAX_FAILURES=1000000 \
    exec "$gatehouse_bin" --data-dir "$data" serve) >"$work/gatehouse.out" 2>"$work/gatehouse.err" &
gatehouse_pid=$!
stop() {
    kill -TERM "$gatehouse_pid" 2>/dev/null || true
    timeout 10 tail --pid="$gatehouse_pid" -f /dev/null 2>/dev/null || kill -KILL "$gatehouse_pid" 2>/dev/null || true
}
trap stop EXIT

deadline=$((SECONDS + 30))
until curl -fsS --max-time 2 "$admin/healthz" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || ! kill -0 "$gatehouse_pid" 2>/dev/null; then
        tail -n 30 "$work/gatehouse.err" >&2
        echo "gatehouse did not start" >&2
        exit 1
    fi
    sleep 0.1 # polling interval of a bounded wait for the listener
done

status=0
# From the work dir: schemathesis keeps a cache in the current directory.
cd "$work"
"$python" -m schemathesis.cli run "$admin/admin/api/openapi.json" \
    --url "$admin" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,ignored_auth \
    --exclude-operation-id revokeAdminToken \
    --max-examples "${ADMIN_API_EXAMPLES:-30}" \
    --phases examples,coverage,fuzzing \
    --seed 1 \
    --workers 1 \
    --generation-database none \
    --report junit --report-dir "$work/report" \
    --no-color || status=$?

# The token must not have reached the server's output.
if grep -qF -- "${token:20}" "$work/gatehouse.out" "$work/gatehouse.err"; then
    echo "the admin token appears in Gatehouse's output" >&2
    status=1
fi
exit "$status"
