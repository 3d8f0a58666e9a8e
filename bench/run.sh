#!/usr/bin/env bash
# Load benchmark: Gatehouse against the fixed bench-baseline (direct upstream, bare proxy).
#
#   bench/run.sh                      # 3 interleaved rounds of 10 s runs
#   ROUNDS=5 DURATION=20s bench/run.sh
#   TARGETS="direct miniproxy" bench/run.sh   # baseline only (no Gatehouse)
#   TARGETS="miniproxy token oidc" LOADS="2:32" bench/run.sh
#       # token endpoint (client credentials) against the bare proxy and oidc-provider (npm)
#   ALT_BIN=/path/to/other/gatehouse TARGETS="miniproxy gatehouse alt" bench/run.sh
#       # ALT_DATA=copy: the alt server gets its own copy of the provisioned data (builds with
#       # different database schemas: GATEHOUSE_BIN the older, ALT_BIN the newer);
#       # ALT_ENV="GATEHOUSE_AUDIT__DURABLE=false": extra environment for the alt server only
#       # A/B: a second Gatehouse build on the same data, measured side by side ("alt"). Both
#       # append to one audit chain; the first batch after each switch finds the head moved,
#       # logs "audit write failed; retrying" and relinks (one retry per switch, by design).
#   STORE=postgres bench/run.sh
#   TARGETS="jwt dpop" bench/run.sh   # a bearer JWT beside a DPoP-bound one (a proof per request)
#   TARGETS="miniproxy gatehouse stdio" bench/run.sh
#       # the hop to a stdio server (gatehouse-example-server --stdio, a shared child) beside
#       # the HTTP hop, same gateway, same echo call
#   STORE=postgres ALT_STORE=sqlite ALT_BIN=target/release/gatehouse TARGETS="gatehouse alt" bench/run.sh
#       # the hop on PostgreSQL ("gatehouse") beside the same build on SQLite ("alt")
#       # Gatehouse on PostgreSQL (records and audit trail) instead of SQLite: a server started
#       # here from PostgreSQL 15's binaries in the work directory (fsync on), as the
#       # `postgres` account when run as root.
#
# Everything listens on 127.0.0.1 only; every wrk run is bounded by DURATION; all processes
# started here are stopped on exit. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
TIMEOUT=${TIMEOUT:-5s}
TARGETS=${TARGETS:-"direct miniproxy gatehouse governed"}
# "threads:connections" pairs, run in this order within each round.
LOADS=${LOADS:-"1:1 2:32"}
BUILD=${BUILD:-1}
BASELINE_SRC=${BASELINE_SRC:-"$ROOT/../shared/bench-baseline"}
CACHE=${BENCH_CACHE:-"${TMPDIR:-/tmp}/gatehouse-bench-cache"}
RESULTS_DIR=${RESULTS_DIR:-"$ROOT/bench/results"}
HOST=127.0.0.1
PORT_UPSTREAM=18080
PORT_MINIPROXY=18081
PORT_GATEHOUSE=18082
PORT_ALT=18083
PORT_OIDC=18084
PORT_POSTGRES=18085
STORE=${STORE:-sqlite}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# --- processes and cleanup ------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # bounded wait, then force
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# wait_http URL METHOD: poll until the URL answers (any status for POST probes, 200 for GET).
wait_healthy() {
    local url=$1 pid=$2 name=$3
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || { sed -n '1,40p' "$WORK/$name.log" >&2; die "$name exited during startup"; }
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.2
    done
    sed -n '1,40p' "$WORK/$name.log" >&2
    die "$name did not answer 200 on $url within 30 s"
}

wait_listening() {
    local port=$1 pid=$2 name=$3
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || { sed -n '1,40p' "$WORK/$name.log" >&2; die "$name exited during startup"; }
        port_in_use "$port" && return 0
        sleep 0.2
    done
    die "$name is not listening on $port within 30 s"
}

# CPU time (utime+stime, clock ticks) of a whole process.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }          # drop "pid (comm) " (comm may contain spaces)
    awk '{ print $12 + $13 }' <<<"$stat"   # fields 14 and 15 of the full line
}

# A PostgreSQL server of this run's own, on loopback, its files in the work directory.
start_postgres() {
    local bindir pg_dir="$WORK/postgres" as=()
    bindir=$(pg_config --bindir 2>/dev/null || true)
    [[ -x "$bindir/postgres" ]] || bindir=/usr/lib/postgresql/15/bin
    [[ -x "$bindir/postgres" ]] || die "STORE=postgres needs PostgreSQL 15's server binaries (postgresql-15)"
    port_in_use "$PORT_POSTGRES" && die "port $PORT_POSTGRES is in use"
    mkdir -p "$pg_dir"
    if [[ $(id -u) == 0 ]]; then
        # PostgreSQL refuses to run as root.
        chmod 755 "$WORK"
        chown -R postgres: "$pg_dir"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bindir/initdb" -A trust -U gatehouse -E UTF8 -D "$pg_dir/data" >"$WORK/initdb.log" 2>&1 ||
        { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    "${as[@]}" "$bindir/postgres" -D "$pg_dir/data" -p "$PORT_POSTGRES" \
        -c listen_addresses="$HOST" -k "$pg_dir" >"$WORK/postgres.log" 2>&1 &
    PID_POSTGRES=$!
    PIDS+=("$PID_POSTGRES")
    wait_listening "$PORT_POSTGRES" "$PID_POSTGRES" postgres
    "$bindir/psql" -X -q -h "$HOST" -p "$PORT_POSTGRES" -U gatehouse -d postgres \
        -c "CREATE DATABASE gatehouse" >>"$WORK/postgres.log" 2>&1 ||
        { cat "$WORK/postgres.log" >&2; die "creating the database failed"; }
    export GATEHOUSE_DATABASE_URL="postgres://gatehouse@$HOST:$PORT_POSTGRES/gatehouse"
}

# --- tools ----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    if [[ $(id -u) == 0 ]]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
for tool in wrk curl python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

for port in $PORT_UPSTREAM $PORT_MINIPROXY $PORT_GATEHOUSE $PORT_ALT; do
    port_in_use "$port" && die "port $port on $HOST is already in use"
done

# --- builds ---------------------------------------------------------------------------------
mkdir -p "$CACHE"
BASELINE_TARGET="$CACHE/baseline-target"
if [[ "$BUILD" == 1 ]]; then
    [[ -d "$BASELINE_SRC" ]] || die "baseline not found at $BASELINE_SRC (set BASELINE_SRC)"
    log "building bench-baseline from a copy (target: $BASELINE_TARGET)"
    rm -rf "$CACHE/baseline-src"
    cp -a "$BASELINE_SRC" "$CACHE/baseline-src"   # -a keeps mtimes: no needless rebuilds
    (cd "$CACHE/baseline-src" && CARGO_TARGET_DIR="$BASELINE_TARGET" cargo build --release --quiet)
fi
UPSTREAM_BIN="$BASELINE_TARGET/release/upstream"
MINIPROXY_BIN="$BASELINE_TARGET/release/miniproxy"
[[ -x "$UPSTREAM_BIN" && -x "$MINIPROXY_BIN" ]] || die "baseline binaries missing in $BASELINE_TARGET/release"
cp "$BASELINE_SRC/mcp.lua" "$WORK/mcp.lua" 2>/dev/null || cp "$CACHE/baseline-src/mcp.lua" "$WORK/mcp.lua"

uses_gatehouse() { has_target gatehouse || has_target governed || has_target token || has_target jwt || has_target dpop || has_target alt || has_target stdio; }
if uses_gatehouse; then
    if [[ -z "${GATEHOUSE_BIN:-}" ]]; then
        target_dir=${CARGO_TARGET_DIR:-target}
        [[ "$target_dir" == /* ]] || target_dir="$ROOT/$target_dir"
        GATEHOUSE_BIN="$target_dir/release/gatehouse"
        if [[ "$BUILD" == 1 ]]; then
            log "building gatehouse (release)"
            cargo build --release --quiet -p gatehouse-cli
        fi
    fi
    [[ -x "$GATEHOUSE_BIN" ]] || die "gatehouse binary missing: $GATEHOUSE_BIN"
fi
if has_target stdio; then
    # The stdio program: the example server beside the gatehouse binary (same build).
    EXAMPLE_BIN=${EXAMPLE_BIN:-$(dirname "$GATEHOUSE_BIN")/gatehouse-example-server}
    if [[ "$BUILD" == 1 && "$EXAMPLE_BIN" == */release/gatehouse-example-server ]]; then
        log "building gatehouse-example-server (release)"
        cargo build --release --quiet -p gatehouse-example-server
    fi
    [[ -x "$EXAMPLE_BIN" ]] || die "example server binary missing: $EXAMPLE_BIN"
fi

# --- start ----------------------------------------------------------------------------------
"$UPSTREAM_BIN" "$HOST:$PORT_UPSTREAM" >"$WORK/upstream.log" 2>&1 &
PID_UPSTREAM=$!
PIDS+=("$PID_UPSTREAM")
wait_listening "$PORT_UPSTREAM" "$PID_UPSTREAM" upstream

if has_target miniproxy; then
    "$MINIPROXY_BIN" "$HOST:$PORT_MINIPROXY" "http://$HOST:$PORT_UPSTREAM" >"$WORK/miniproxy.log" 2>&1 &
    PID_MINIPROXY=$!
    PIDS+=("$PID_MINIPROXY")
    wait_listening "$PORT_MINIPROXY" "$PID_MINIPROXY" miniproxy
fi

TOKEN=
if uses_gatehouse; then
    DATA="$WORK/data"
    mkdir -p "$DATA"
    case $STORE in
        sqlite) ;;
        postgres) log "starting PostgreSQL on $HOST:$PORT_POSTGRES"; start_postgres ;;
        *) die "STORE=$STORE: use sqlite or postgres" ;;
    esac
    gh() { "$GATEHOUSE_BIN" --data-dir "$DATA" "$@"; }
    log "provisioning gatehouse (data dir in $WORK)"
    gh servers add perf --url "http://$HOST:$PORT_UPSTREAM/mcp" >"$WORK/provision.log" 2>&1 ||
        { cat "$WORK/provision.log" >&2; die "gatehouse servers add failed"; }
    gh clients create bench >>"$WORK/provision.log" 2>&1 ||
        { cat "$WORK/provision.log" >&2; die "gatehouse clients create failed"; }
    gh connections grant --client bench --server perf --tools echo >>"$WORK/provision.log" 2>&1 ||
        { cat "$WORK/provision.log" >&2; die "gatehouse connections grant failed"; }
    TOKEN=$(gh --output json keys create --client bench 2>>"$WORK/provision.log" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
        { cat "$WORK/provision.log" >&2; die "gatehouse keys create failed"; }
    [[ "$TOKEN" == gth_* ]] || die "unexpected key format from keys create"

    # "token": the token endpoint, client credentials with HTTP Basic, one resource.
    if has_target token || has_target jwt || has_target dpop; then
        gh clients create svc >>"$WORK/provision.log" 2>&1
        gh connections grant --client svc --server perf --tools echo >>"$WORK/provision.log" 2>&1
        SVC_SECRET=$(gh --output json clients oauth svc --grant client_credentials 2>>"$WORK/provision.log" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])') ||
            { cat "$WORK/provision.log" >&2; die "gatehouse clients oauth failed"; }
        SVC_BASIC=$(printf 'svc:%s' "$SVC_SECRET" | base64 -w0)
    fi

    # "stdio": the same gateway, a server that is a local program (one shared child).
    if has_target stdio; then
        {
            gh servers add perf-stdio --command "$EXAMPLE_BIN" --arg --stdio
            gh connections grant --client bench --server perf-stdio --tools echo
        } >>"$WORK/provision.log" 2>&1 || { cat "$WORK/provision.log" >&2; die "provisioning stdio failed"; }
    fi

    # "governed": the same gateway, a second mount with one policy of every kind and the
    # default guardrail set on both directions (DESIGN.md's "one policy, one guardrail" budget,
    # exceeded on purpose).
    if has_target governed; then
        {
            gh servers add gov --url "http://$HOST:$PORT_UPSTREAM/mcp"
            gh connections grant --client bench --server gov --tools echo
            cat >"$WORK/gov-policies.json" <<POLICIES
[
 {"id": "args", "kind": "arguments", "server": "gov", "tools": "echo", "spec": {"rules": [{"path": "\$.text", "max_length": 1000}]}},
 {"id": "loopback", "kind": "ip", "server": "gov", "spec": {"allow": ["127.0.0.0/8", "::1/128"]}},
 {"id": "countries", "kind": "country", "server": "gov", "spec": {"allow": ["FR"], "unknown": "allow"}},
 {"id": "always", "kind": "schedule", "server": "gov", "spec": {"time_zone": "Europe/Paris"}},
 {"id": "big-quota", "kind": "quota", "server": "gov", "spec": {"limit": 1000000000, "window": "day"}},
 {"id": "big-rate", "kind": "rate_limit", "server": "gov", "spec": {"requests": 10000000, "period": "1s", "burst": 1000000}},
 {"id": "default-guardrails", "kind": "guardrail", "server": "gov", "spec": {"direction": "both", "action": "redact", "detectors": ["default"]}}
]
POLICIES
            gh policy import "$WORK/gov-policies.json"
        } >>"$WORK/provision.log" 2>&1 || { cat "$WORK/provision.log" >&2; die "provisioning governed failed"; }
    fi

    # The alt server on its own copy of the provisioned data (same keys, same master key), for
    # builds whose database schemas differ: provision with the older build (GATEHOUSE_BIN) and
    # let the newer one (ALT_BIN) migrate its copy.
    ALT_DATA_DIR="$DATA"
    if has_target alt && [[ "${ALT_DATA:-shared}" == copy ]]; then
        ALT_DATA_DIR="$WORK/data-alt"
        cp -a "$DATA" "$ALT_DATA_DIR"
    fi
    # ALT_STORE=sqlite with STORE=postgres: the alt server on SQLite, its data moved there from
    # PostgreSQL by export/import (same keys, same master key), so the two stores' hops are
    # measured side by side in one run.
    if has_target alt && [[ "${ALT_STORE:-$STORE}" != "$STORE" ]]; then
        [[ "$STORE" == postgres && "$ALT_STORE" == sqlite ]] ||
            die "ALT_STORE=$ALT_STORE with STORE=$STORE: only ALT_STORE=sqlite with STORE=postgres"
        ALT_DATA_DIR="$WORK/data-alt"
        mkdir -p "$ALT_DATA_DIR"
        cp -a "$DATA/." "$ALT_DATA_DIR/"
        ALT_DATABASE_URL="sqlite://$ALT_DATA_DIR/gatehouse.db"
        gh database export >"$WORK/export.jsonl" 2>>"$WORK/provision.log" &&
            GATEHOUSE_DATABASE_URL="$ALT_DATABASE_URL" "$GATEHOUSE_BIN" --data-dir "$ALT_DATA_DIR" \
                database import <"$WORK/export.jsonl" >>"$WORK/provision.log" 2>&1 ||
            { cat "$WORK/provision.log" >&2; die "moving the data to SQLite for the alt server failed"; }
        ALT_ENV="${ALT_ENV:-} GATEHOUSE_DATABASE_URL=$ALT_DATABASE_URL"
    fi

    # start_gatehouse NAME BINARY PORT [DATA_DIR [VAR=VALUE...]]: one server on the provisioned
    # data (sets STARTED_PID).
    start_gatehouse() {
        local name=$1 bin=$2 port=$3 dir=${4:-$DATA}
        shift 4 2>/dev/null || shift $#
        env GATEHOUSE_LISTEN="$HOST:$port" \
            GATEHOUSE_POLICY__GEOIP_DATABASE="$ROOT/crates/gatehouse/tests/fixtures/geo/countries.mmdb" \
            GATEHOUSE_PUBLIC_URL="http://$HOST:$port" \
            GATEHOUSE_LOG__FILTER=warn \
            "$@" \
            "$bin" --data-dir "$dir" serve >"$WORK/$name.log" 2>&1 &
        STARTED_PID=$!
        PIDS+=("$STARTED_PID")
        wait_healthy "http://$HOST:$port/healthz" "$STARTED_PID" "$name"
    }
    start_gatehouse gatehouse "$GATEHOUSE_BIN" "$PORT_GATEHOUSE"
    PID_GATEHOUSE=$STARTED_PID
    if has_target alt; then
        [[ -x "${ALT_BIN:-}" ]] || die "the alt target needs ALT_BIN (another gatehouse binary)"
        # shellcheck disable=SC2086 # ALT_ENV is a list of VAR=VALUE words
        start_gatehouse alt "$ALT_BIN" "$PORT_ALT" "$ALT_DATA_DIR" ${ALT_ENV:-}
        PID_ALT=$STARTED_PID
    fi
    # "jwt": the "gatehouse" hop with an OAuth access token instead of the API key (valid
    # for oauth.access_token_ttl: keep ROUNDS × DURATION well under 10 minutes).
    if has_target jwt; then
        ACCESS_TOKEN=$(curl -s --max-time 5 -H "Authorization: Basic $SVC_BASIC" \
            --data-urlencode grant_type=client_credentials \
            --data-urlencode "resource=http://$HOST:$PORT_GATEHOUSE/perf/mcp" \
            "http://$HOST:$PORT_GATEHOUSE/oauth/token" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') ||
            die "no access token for the jwt target"
    fi
    # "dpop": the same hop with a DPoP-bound token (RFC 9449) and a fresh proof per request,
    # made ahead of the runs (DPOP_PROOFS of them; each is single use).
    if has_target dpop; then
        # Each wrk run gets DPOP_RUN_PROOFS proofs, split into one block per thread.
        : "${DPOP_RUN_PROOFS:=60000}"
        DPOP_PROOFS=$((DPOP_RUN_PROOFS * (1 + ROUNDS * $(wc -w <<<"$LOADS")) + 1))
        log "making $DPOP_PROOFS DPoP proofs"
        DPOP_FILE="$WORK/dpop-proofs"
        DPOP_TOKEN=$(python3 "$ROOT/bench/dpop_proofs.py" --token-url "http://$HOST:$PORT_GATEHOUSE/oauth/token" \
            --basic "$SVC_BASIC" --resource "http://$HOST:$PORT_GATEHOUSE/perf/mcp" \
            --htu "http://$HOST:$PORT_GATEHOUSE/perf/mcp" --count "$DPOP_PROOFS" --out "$DPOP_FILE") ||
            die "no DPoP-bound token for the dpop target"
        DPOP_NEXT=0   # the next unused line of DPOP_FILE
    fi
fi

# The reference authorization server: oidc-provider (npm, pinned in bench/oidc-provider),
# client credentials issuing JWT access tokens for the same resource.
if has_target oidc; then
    OIDC_DIR="$CACHE/oidc-provider"
    mkdir -p "$OIDC_DIR"
    cp "$ROOT/bench/oidc-provider/package.json" "$ROOT/bench/oidc-provider/server.mjs" "$OIDC_DIR/"
    if [[ ! -d "$OIDC_DIR/node_modules/oidc-provider" ]]; then
        log "installing oidc-provider (npm)"
        (cd "$OIDC_DIR" && npm install --no-audit --no-fund --silent) || die "npm install oidc-provider failed"
    fi
    ISSUER="http://$HOST:$PORT_OIDC" RESOURCE="http://$HOST:$PORT_GATEHOUSE/perf/mcp" \
        NODE_ENV=production node "$OIDC_DIR/server.mjs" >"$WORK/oidc.log" 2>&1 &
    PID_OIDC=$!
    PIDS+=("$PID_OIDC")
    wait_healthy "http://$HOST:$PORT_OIDC/.well-known/openid-configuration" "$PID_OIDC" oidc
fi

url_of() {
    case $1 in
        direct) echo "http://$HOST:$PORT_UPSTREAM" ;;
        miniproxy) echo "http://$HOST:$PORT_MINIPROXY" ;;
        gatehouse | governed | token | jwt | dpop | stdio) echo "http://$HOST:$PORT_GATEHOUSE" ;;
        alt) echo "http://$HOST:$PORT_ALT" ;;
        oidc) echo "http://$HOST:$PORT_OIDC" ;;
    esac
}
pid_of() {
    case $1 in
        direct) echo "$PID_UPSTREAM" ;;
        miniproxy) echo "$PID_MINIPROXY" ;;
        gatehouse | governed | token | jwt | dpop | stdio) echo "$PID_GATEHOUSE" ;;
        alt) echo "$PID_ALT" ;;
        oidc) echo "$PID_OIDC" ;;
    esac
}
path_of() {
    case $1 in
        gatehouse | jwt | dpop | alt) echo /perf/mcp ;;
        governed) echo /gov/mcp ;;
        stdio) echo /perf-stdio/mcp ;;
        token) echo /oauth/token ;;
        oidc) echo /token ;;
        *) echo /mcp ;;
    esac
}
script_of() {
    case $1 in
        token | oidc) echo "$ROOT/bench/token.lua" ;;
        dpop) echo "$ROOT/bench/dpop.lua" ;;
        *) echo "$WORK/mcp.lua" ;;
    esac
}
basic_of() { if [[ $1 == oidc ]]; then printf 'bench:bench-secret-bench-secret' | base64 -w0; else echo "${SVC_BASIC:-}"; fi; }
authz_of() {
    case $1 in
        gatehouse | governed | alt | stdio) echo "Bearer $TOKEN" ;;
        jwt) echo "Bearer $ACCESS_TOKEN" ;;
        dpop) echo "DPoP $DPOP_TOKEN" ;;
    esac
}

# --- sanity: one request per target must be a 200 ------------------------------------------
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'
RESOURCE="http://$HOST:$PORT_GATEHOUSE/perf/mcp"
for target in $TARGETS; do
    if [[ $target == token || $target == oidc ]]; then
        args=(-s -o "$WORK/sample.$target" -w '%{http_code}' --max-time 5 -X POST
            -H "Authorization: Basic $(basic_of "$target")"
            --data-urlencode grant_type=client_credentials --data-urlencode "resource=$RESOURCE")
    else
        args=(-s -o "$WORK/sample.$target" -w '%{http_code}' --max-time 5 -X POST
            -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
            --data "$BODY")
    fi
    authz=$(authz_of "$target")
    [[ -n "$authz" ]] && args+=(-H "Authorization: $authz")
    if [[ $target == dpop ]]; then
        args+=(-H "DPoP: $(sed -n "$((DPOP_NEXT + 1))p" "$DPOP_FILE")")
        DPOP_NEXT=$((DPOP_NEXT + 1))
    fi
    code=$(curl "${args[@]}" "$(url_of "$target")$(path_of "$target")" || true)
    if [[ "$code" != 200 ]]; then
        log "sample request to $target answered HTTP $code:"
        head -c 2000 "$WORK/sample.$target" >&2; echo >&2
        [[ "${ALLOW_ERRORS:-0}" == 1 ]] || die "$target does not answer 200 (set ALLOW_ERRORS=1 to measure anyway)"
    fi
done

# --- runs -----------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$RESULTS_DIR/$STAMP.raw"
SUMMARY="$RESULTS_DIR/$STAMP.md"
CLK_TCK=$(getconf CLK_TCK)
{
    echo "# gatehouse load bench $STAMP"
    echo "META commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- crates 2>/dev/null || echo +dirty)" \
        "nproc=$(nproc) kernel=$(uname -r) wrk=\"$(wrk -v 2>&1 | head -n1 | awk '{print $2}')\"" \
        "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP timeout=$TIMEOUT loads=\"$LOADS\" targets=\"$TARGETS\" store=$STORE"
} >"$RAW"

run_wrk() {   # target threads conns duration label
    local target=$1 t=$2 c=$3 d=$4 label=$5 before after out
    before=$(cpu_ticks "$(pid_of "$target")")
    out=$(MCP_PATH=$(path_of "$target") AUTHZ=$(authz_of "$target") \
        TOKEN_PATH=$(path_of "$target") BASIC=$(basic_of "$target") RESOURCE=$RESOURCE \
        PROOFS=${DPOP_FILE:-} FIRST=${DPOP_NEXT:-0} BLOCK=$((${DPOP_RUN_PROOFS:-0} / t)) \
        wrk -t"$t" -c"$c" -d"$d" --timeout "$TIMEOUT" -s "$(script_of "$target")" "$(url_of "$target")" 2>&1) || true
    after=$(cpu_ticks "$(pid_of "$target")")
    {
        echo "### $label target=$target t=$t c=$c d=$d"
        echo "$out"
    } >>"$RAW"
    local result
    result=$(grep '^RESULT ' <<<"$out" | tail -n1 || true)
    if [[ $target == dpop ]]; then
        DPOP_NEXT=$((DPOP_NEXT + DPOP_RUN_PROOFS))
        local sent
        sent=$(sed -n 's/.*reqs=\([0-9]*\).*/\1/p' <<<"$result")
        ((${sent:-0} < DPOP_RUN_PROOFS)) ||
            log "warning: this run sent more requests than it had DPoP proofs (raise DPOP_RUN_PROOFS)"
    fi
    if [[ -z "$result" ]]; then
        log "no RESULT line from wrk ($label $target t=$t c=$c)"
        return
    fi
    if [[ "$label" != warmup ]]; then
        echo "DATA $label target=$target t=$t c=$c cpu_ticks=$((after - before)) clk_tck=$CLK_TCK ${result#RESULT }" >>"$RAW"
    fi
    log "$label $target t=$t c=$c: ${result#RESULT }"
}

log "warm-up ($WARMUP per target)"
for target in $TARGETS; do
    run_wrk "$target" 2 32 "$WARMUP" warmup
done

for round in $(seq 1 "$ROUNDS"); do
    for load in $LOADS; do
        for target in $TARGETS; do
            run_wrk "$target" "${load%%:*}" "${load##*:}" "$DURATION" "round=$round"
        done
    done
done

python3 "$ROOT/bench/summarize.py" "$RAW" | tee "$SUMMARY"
log "raw results: ${RAW#"$ROOT"/}; summary: ${SUMMARY#"$ROOT"/}"
