#!/usr/bin/env bash
# The console walk (walk.mjs) against a Gatehouse of its own: fresh data dir, an admin token
# made with the CLI, the admin listener on a free loopback port, the shared example server
# as the upstream to register in the browser. A second upstream, `notes`, is a stdio program
# (notes.py beside this script, registered in the browser too; the configuration restricts no
# stdio command) whose one tool's description is read from a file in WORK_DIR at every
# tools/list, so the walk can change a definition. Screenshots go to SHOTS.
#
# Usage: e2e/console/walk.sh GATEHOUSE_BIN NODE EXAMPLE_URL WORK_DIR SHOTS
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gatehouse_bin=$1
node=$2
example_url=$3
work=$4
shots=$5
data="$work/data"
mkdir -p "$work" "$shots"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
gh() { (cd "$work" && "$gatehouse_bin" --data-dir "$data" "$@"); }

gh --output json admin-tokens create --name console-walk --role admin >"$work/token.json"
token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$work/token.json")
[[ $token == gth_* ]] || { echo "admin-tokens create printed no token" >&2; exit 1; }

description="$work/notes-description.txt"
printf 'Looks a note up by its title.' >"$description"

port=$(free_port)
admin_port=$(free_port)
gateway="http://127.0.0.1:$port"
admin="http://127.0.0.1:$admin_port"
(cd "$work" && GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_PUBLIC_URL="$gateway" \
    GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$admin_port" \
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

cd "$here"
ADMIN_URL=$admin GATEWAY_URL=$gateway EXAMPLE_URL=$example_url ADMIN_TOKEN=$token SHOTS=$shots \
    NOTES_SCRIPT="$here/notes.py" NOTES_DESCRIPTION=$description "$node" walk.mjs
