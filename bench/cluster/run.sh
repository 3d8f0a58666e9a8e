#!/usr/bin/env bash
# Three-replica harness: PostgreSQL, Redis, the example MCP server and three `gatehouse serve`
# replicas on loopback, driven by the load driver in this directory. See bench/README.md.
#
#   bench/cluster/run.sh                    # short: 20 s load, 30 s soak
#   SOAK=10m bench/cluster/run.sh           # the committed run
#   PROFILE=debug bench/cluster/run.sh      # debug builds (no release build on the machine)
#
# Everything listens on 127.0.0.1 only, on free ports; PostgreSQL runs from a temporary
# directory as the `postgres` account when run as root; every phase is bounded in time and
# count; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

LOAD_SECONDS=${LOAD_SECONDS:-20}
RESTART_SECONDS=${RESTART_SECONDS:-45}
SOAK=${SOAK:-30s}
WORKERS=${WORKERS:-12}
MAX_REQUESTS=${MAX_REQUESTS:-5000000}
RATE=${RATE:-600}              # the rate-limited client's limit, requests per minute
SAMPLE_EVERY=${SAMPLE_EVERY:-5}
PROFILE=${PROFILE:-release}
BUILD=${BUILD:-1}
RESULTS_DIR=${RESULTS_DIR:-"$ROOT/bench/results"}
HOST=127.0.0.1

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

seconds_of() {
    case $1 in
        *m) echo $(( ${1%m} * 60 )) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}
SOAK_SECONDS=$(seconds_of "$SOAK")

for tool in cargo python3 curl redis-server; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
PG_BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || true)}
[[ -x "$PG_BIN/postgres" ]] || PG_BIN=/usr/lib/postgresql/15/bin
[[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL server binaries not found (apt-get install postgresql-15)"

# --- processes and cleanup ------------------------------------------------------------------
WORK=$(mktemp -d -t gatehouse-cluster.XXXXXX)
chmod 755 "$WORK"
PIDS=()
REPLICA_PIDS=()
cleanup() {
    local pid
    stop_all() {
        for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
        for pid in "$@"; do
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    }
    # The replicas first: they flush their trail and remove their heartbeat row on the way out.
    stop_all "${REPLICA_PIDS[@]}"
    [[ -d "$WORK/pg/data" ]] && as_pg "$PG_BIN/pg_ctl" stop -m fast -w -D "$WORK/pg/data" >/dev/null 2>&1 || true
    stop_all "${PIDS[@]}"
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() { # DESCRIPTION COMMAND...: polls for up to 60 s
    local what=$1; shift
    for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what did not come up within 60 s (logs in $WORK, KEEP_WORK=1 keeps them)"
}
ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$1/readyz") == 200 ]]; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- builds ---------------------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-target}
[[ "$target_dir" == /* ]] || target_dir="$ROOT/$target_dir"
if [[ "$PROFILE" == release ]]; then BIN="$target_dir/release"; PROFILE_FLAG=--release
else BIN="$target_dir/debug"; PROFILE_FLAG=; fi
if [[ "$BUILD" == 1 ]]; then
    log "building gatehouse, the example server and the load driver ($PROFILE)"
    cargo build $PROFILE_FLAG --quiet -p gatehouse-cli -p gatehouse-example-server -p gatehouse-cluster-load
fi
GATEHOUSE="$BIN/gatehouse"
DRIVER="$BIN/gatehouse-cluster-load"
for bin in "$GATEHOUSE" "$BIN/gatehouse-example-server" "$DRIVER"; do
    [[ -x "$bin" ]] || die "missing $bin"
done
LOAD_BEFORE=$(loadavg)

# --- PostgreSQL, Redis, upstream ------------------------------------------------------------
PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
[[ $(id -u) == 0 ]] && chown postgres: "$WORK/pg"
as_pg "$PG_BIN/initdb" -A trust -U gatehouse -E UTF8 --locale=C.UTF-8 -D "$WORK/pg/data" >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
as_pg "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -k "$WORK/pg" \
    -c listen_addresses=$HOST -c max_connections=200 >"$WORK/postgres.log" 2>&1 &
PIDS+=($!)
wait_for PostgreSQL "$PG_BIN/psql" -X -q -h $HOST -p "$PG_PORT" -U gatehouse -d postgres -c 'SELECT 1'
"$PG_BIN/psql" -X -q -h $HOST -p "$PG_PORT" -U gatehouse -d postgres -c 'CREATE DATABASE gatehouse'

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind $HOST --save "" --appendonly no --dir "$WORK/redis" \
    >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for Redis redis-cli -h $HOST -p "$REDIS_PORT" PING

UPSTREAM_PORT=$(free_port)
"$BIN/gatehouse-example-server" --listen "$HOST:$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_for "the example server" bash -c "exec 3<>/dev/tcp/$HOST/$UPSTREAM_PORT"

PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
ADDRS=("$HOST:${PORTS[0]}" "$HOST:${PORTS[1]}" "$HOST:${PORTS[2]}")
REPLICAS=$(IFS=,; echo "${ADDRS[*]}")
export GATEHOUSE_DATABASE_URL="postgres://gatehouse@$HOST:$PG_PORT/gatehouse"
export GATEHOUSE_REDIS__URL="redis://$HOST:$REDIS_PORT"
GATEHOUSE_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export GATEHOUSE_MASTER_KEY
# One public URL for all three, as behind a balancer: access tokens name it as their audience.
export GATEHOUSE_PUBLIC_URL="http://${ADDRS[0]}"
# As the Kubernetes example: keep answering (with Connection: close) while a balancer notices.
export GATEHOUSE_SHUTDOWN__READY_DELAY=${READY_DELAY:-1s}
export GATEHOUSE_LOG__FILTER=warn

# --- provisioning ---------------------------------------------------------------------------
gh() { "$GATEHOUSE" --data-dir "$WORK/admin" "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
log "provisioning (PostgreSQL :$PG_PORT, Redis :$REDIS_PORT, upstream :$UPSTREAM_PORT)"
{
    gh servers add demo --url "http://$HOST:$UPSTREAM_PORT/mcp"
    for client in agent limited svc leaver; do
        gh clients create "$client"
        gh connections grant --client "$client" --server demo --tools echo,add
    done
    gh policy add limited-rate --kind rate_limit --client limited \
        --spec "{\"requests\": $RATE, \"period\": \"1m\", \"burst\": 1}"
} >"$WORK/provision.log" 2>&1 || { cat "$WORK/provision.log" >&2; die "provisioning failed"; }
KEY=$(gh -o json keys create --client agent 2>>"$WORK/provision.log" | json_field token)
LIMITED_KEY=$(gh -o json keys create --client limited 2>>"$WORK/provision.log" | json_field token)
LEAVER=$(gh -o json keys create --client leaver 2>>"$WORK/provision.log")
LEAVER_KEY=$(json_field token <<<"$LEAVER")
LEAVER_ID=$(json_field id <<<"$LEAVER")
SVC_SECRET=$(gh -o json clients oauth svc --grant client_credentials 2>>"$WORK/provision.log" | json_field client_secret)

# --- replicas -------------------------------------------------------------------------------
start_replica() { # INDEX
    local i=$1
    mkdir -p "$WORK/r$i"
    "$GATEHOUSE" --data-dir "$WORK/r$i" serve --listen "${ADDRS[$i]}" >>"$WORK/replica$i.log" 2>&1 &
    REPLICA_PIDS[$i]=$!
    wait_for "replica $i" ready "${ADDRS[$i]}"
}
for i in 0 1 2; do start_replica "$i"; done
log "replicas ready on $REPLICAS"

DRIVE=("$DRIVER" load --replicas "$REPLICAS" --workers "$WORKERS" --max-requests "$MAX_REQUESTS"
    --key "$KEY" --limited-key "$LIMITED_KEY" --rate-per-minute "$RATE" --rate-burst 1
    --oauth-client svc --oauth-secret "$SVC_SECRET" --resource "$GATEHOUSE_PUBLIC_URL/demo/mcp")

log "load: $LOAD_SECONDS s, $WORKERS callers"
"${DRIVE[@]}" --seconds "$LOAD_SECONDS" >"$WORK/load.json"

log "revocation propagation"
"$DRIVER" propagation --replicas "$REPLICAS" --key "$LEAVER_KEY" \
    --revoke "'$GATEHOUSE' --data-dir '$WORK/admin' keys revoke $LEAVER_ID >/dev/null" >"$WORK/propagation.json"

log "rolling restart under load ($RESTART_SECONDS s)"
"${DRIVE[@]}" --seconds "$RESTART_SECONDS" >"$WORK/restart.json" &
DRIVER_PID=$!
sleep 3
RESTART_STARTED=$(date +%s.%N)
for i in 0 1 2; do
    kill -TERM "${REPLICA_PIDS[$i]}"
    wait "${REPLICA_PIDS[$i]}" || true
    start_replica "$i"
    sleep 2
done
RESTART_TOOK=$(python3 -c "import time; print(round(time.time() - $RESTART_STARTED, 1))")
kill -0 "$DRIVER_PID" 2>/dev/null || log "warning: the load ended before the restarts did (raise RESTART_SECONDS)"
wait "$DRIVER_PID"

log "soak: $SOAK_SECONDS s, resident memory every $SAMPLE_EVERY s"
"${DRIVE[@]}" --seconds "$SOAK_SECONDS" >"$WORK/soak.json" &
DRIVER_PID=$!
SOAK_STARTED=$(date +%s)
echo "seconds,replica0_kib,replica1_kib,replica2_kib" >"$WORK/memory.csv"
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
while kill -0 "$DRIVER_PID" 2>/dev/null; do
    echo "$(( $(date +%s) - SOAK_STARTED )),$(rss "${REPLICA_PIDS[0]}"),$(rss "${REPLICA_PIDS[1]}"),$(rss "${REPLICA_PIDS[2]}")" >>"$WORK/memory.csv"
    sleep "$SAMPLE_EVERY"
done
wait "$DRIVER_PID"
LOAD_AFTER=$(loadavg)

# --- report ---------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
python3 "$ROOT/bench/cluster/report.py" "$WORK" "$RESULTS_DIR/cluster-$STAMP" \
    "profile=$PROFILE workers=$WORKERS rate=$RATE/min soak=${SOAK_SECONDS}s restart_took=${RESTART_TOOK}s" \
    "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)"
cp "$WORK/memory.csv" "$RESULTS_DIR/cluster-$STAMP-memory.csv"
log "results: $RESULTS_DIR/cluster-$STAMP.md"
