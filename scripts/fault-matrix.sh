#!/usr/bin/env bash
# Fault matrix: drives the real ffrelay binary through crashes, signals, a full disk, a
# read-only or removed database, an API outage, wall-clock jumps and two daemons on one
# database. Everything runs on 127.0.0.1 against `ffrelay mock-api`, in a temporary folder.
#
# Usage: scripts/fault-matrix.sh [SCENARIO...]
#   scenarios: kill9 sigterm fulldisk readonly removed outage clock twodaemons (default: all)
# Environment:
#   FFRELAY_BIN     binary to test (default: target/release/ffrelay, built when missing)
#   OUTAGE_SECONDS  how long the API stays unreachable in the outage scenario (default 120)
# Needs: bash, curl, python3; `faketime` for the clock scenario and `setpriv` for the
# read-only one (both skipped with a message when missing).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FFRELAY_BIN:-$root/target/release/ffrelay}
outage_seconds=${OUTAGE_SECONDS:-120}
work=$(mktemp -d /tmp/ffrelay-faults.XXXXXX)
chmod 755 "$work"
mock_port=18751
serve_port=18750
results=()
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
    [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { results+=("PASS  $1"); log "PASS $1"; }
fail() { results+=("FAIL  $1: $2"); log "FAIL $1: $2"; }

if [ ! -x "$bin" ]; then
    log "building $bin"
    (cd "$root" && cargo build --release --quiet) || exit 1
fi

# Environment of every ffrelay process; $1 is the database, $2 the listen port.
relay_env() {
    echo FFRELAY__DATABASE__PATH="$1" FFRELAY__SERVER__LISTEN=127.0.0.1:"$2" \
        FFRELAY__API__BASE_URL=http://127.0.0.1:$mock_port/v1 \
        FFRELAY__API__ACCESS_TOKEN=mock-access-0 FFRELAY__API__REFRESH_TOKEN=mock-refresh \
        FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND=0 FFRELAY__DELIVERY__POLL_INTERVAL=100ms \
        FFRELAY__DELIVERY__BACKOFF_INITIAL=100ms FFRELAY__DELIVERY__BACKOFF_MAX=2s \
        FFRELAY__DELIVERY__SHUTDOWN_GRACE=5s RUST_LOG=warn
}

relay() { local db=$1 port=$2; shift 2; env $(relay_env "$db" "$port") "$bin" "$@"; }

wait_http() {
    for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    return 1
}

start_mock() {
    "$bin" mock-api --listen 127.0.0.1:$mock_port --no-record-bodies "$@" >>"$work/mock.log" 2>&1 &
    mock_pid=$!
    pids+=("$mock_pid")
    wait_http "http://127.0.0.1:$mock_port/_mock/stats"
}

stop_mock() { kill -9 "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null; }

start_serve() {
    local db=$1 port=$2
    shift 2
    env $(relay_env "$db" "$port") "$@" "$bin" serve >>"$work/serve-$port.log" 2>&1 &
    serve_pid=$!
    pids+=("$serve_pid")
    wait_http "http://127.0.0.1:$port/healthz"
}

# Prints the number of jobs with a status, from `ffrelay stats --json`.
count() {
    relay "$1" 0 stats --json | python3 -c '
import json, sys
stats = json.load(sys.stdin)["stats"]
print(sum(n for status, kind, n in stats["counts"] if status == sys.argv[1]))' "$2"
}

accepted() {
    curl -sf "http://127.0.0.1:$mock_port/_mock/stats" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted_items"]["conversions"])'
}

integrity() {
    python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$1"
}

wait_drained() {
    local db=$1 limit=$2
    for _ in $(seq 1 $((limit * 5))); do
        [ "$(count "$db" pending)" = 0 ] && [ "$(count "$db" in_flight)" = 0 ] && return 0
        sleep 0.2
    done
    return 1
}

# Writes N conversion lines with unique hit IDs; $3 makes the IDs unique across files.
make_lines() {
    python3 -c 'import sys; n, tag = int(sys.argv[1]), sys.argv[2]
for i in range(n): print(f"{tag}{i:020d}, 1.5")' "$1" "$3" >"$2"
}

scenario_kill9() {
    local db=$work/kill9.db
    start_mock --latency 5ms
    make_lines 5000 "$work/k.txt" k
    relay "$db" 0 enqueue conversions --format lines "$work/k.txt" >/dev/null
    start_serve "$db" $serve_port FFRELAY__DELIVERY__MAX_BATCH_ITEMS=50
    for round in $(seq 1 10); do
        sleep "0.$((RANDOM % 6 + 2))"
        kill -9 "$serve_pid"; wait "$serve_pid" 2>/dev/null
        start_serve "$db" $serve_port FFRELAY__DELIVERY__MAX_BATCH_ITEMS=50 || { fail kill9 "restart $round failed"; stop_mock; return; }
    done
    if ! wait_drained "$db" 120; then fail kill9 "not drained"; stop_mock; return; fi
    local delivered accepted_items
    delivered=$(count "$db" delivered); accepted_items=$(accepted)
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null; stop_mock
    log "kill9: delivered $delivered of 5000, items accepted by the API $accepted_items (duplicates $((accepted_items - 5000)))"
    [ "$delivered" = 5000 ] && [ "$accepted_items" -ge 5000 ] && [ "$(integrity "$db")" = ok ] \
        && pass kill9 || fail kill9 "delivered $delivered, accepted $accepted_items"
}

scenario_sigterm() {
    local db=$work/sigterm.db
    start_mock --latency 20ms
    make_lines 3000 "$work/s.txt" s
    relay "$db" 0 enqueue conversions --format lines "$work/s.txt" >/dev/null
    start_serve "$db" $serve_port FFRELAY__DELIVERY__MAX_BATCH_ITEMS=10
    sleep 1
    local started=$SECONDS
    kill -TERM "$serve_pid"; wait "$serve_pid"; local code=$?
    local took=$((SECONDS - started)) in_flight
    in_flight=$(count "$db" in_flight)
    log "sigterm: exit $code after ${took}s, in_flight $in_flight"
    start_serve "$db" $serve_port
    wait_drained "$db" 60; local delivered
    delivered=$(count "$db" delivered)
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null; stop_mock
    [ "$code" = 0 ] && [ "$took" -le 10 ] && [ "$in_flight" = 0 ] && [ "$delivered" = 3000 ] \
        && pass sigterm || fail sigterm "exit $code in ${took}s, in_flight $in_flight, delivered $delivered"
}

scenario_fulldisk() {
    local db=$work/full.db
    make_lines 1000 "$work/f1.txt" f
    make_lines 200000 "$work/f2.txt" g
    relay "$db" 0 enqueue conversions --format lines "$work/f1.txt" >/dev/null
    # A file-size limit of 4 MiB makes the large enqueue run out of space mid-transaction.
    (ulimit -f 8192; relay "$db" 0 enqueue conversions --format lines "$work/f2.txt") >"$work/full.out" 2>&1
    local code=$? pending
    pending=$(count "$db" pending)
    log "fulldisk: large enqueue exit $code, pending $pending, integrity $(integrity "$db")"
    relay "$db" 0 enqueue conversions --format lines "$work/f1.txt" >/dev/null; local after
    after=$(count "$db" pending)
    log "fulldisk: $(tail -c 300 "$work/full.out")"
    [ "$code" = 1 ] && grep -q "nothing was stored" "$work/full.out" && [ "$pending" = 1000 ] \
        && [ "$after" = 2000 ] && [ "$(integrity "$db")" = ok ] \
        && pass fulldisk || fail fulldisk "exit $code, pending $pending then $after"
}

scenario_readonly() {
    if [ "$(id -u)" = 0 ] && ! command -v setpriv >/dev/null; then
        log "readonly: skipped, root ignores file modes and setpriv is missing"; return
    fi
    local dir=$work/ro db=$work/ro/ro.db
    mkdir -p "$dir"; make_lines 10 "$work/r.txt" r
    relay "$db" 0 enqueue conversions --format lines "$work/r.txt" >/dev/null
    chmod 0444 "$db"* ; chmod 0555 "$dir"
    local as_nobody=()
    [ "$(id -u)" = 0 ] && as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    "${as_nobody[@]}" env $(relay_env "$db" 0) "$bin" enqueue conversions --format lines "$work/r.txt" >"$work/ro.out" 2>&1
    local code=$?
    chmod 0755 "$dir"; chmod 0600 "$db"*
    log "readonly: exit $code: $(head -c 300 "$work/ro.out")"
    [ "$code" != 0 ] && grep -q "ro.db" "$work/ro.out" && [ "$(count "$db" pending)" = 10 ] \
        && pass readonly || fail readonly "exit $code"
}

scenario_removed() {
    local db=$work/removed.db
    start_mock
    start_serve "$db" $serve_port
    rm -f "$db"
    sleep 0.5
    local ready health
    ready=$(curl -s -o "$work/readyz" -w '%{http_code}' "http://127.0.0.1:$serve_port/readyz")
    health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$serve_port/healthz")
    log "removed: /readyz $ready $(cat "$work/readyz"), /healthz $health"
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null; stop_mock
    [ "$ready" = 503 ] && [ "$health" = 200 ] && grep -q "removed or replaced" "$work/readyz" \
        && pass removed || fail removed "/readyz $ready"
}

scenario_outage() {
    local db=$work/outage.db
    start_mock
    make_lines 500 "$work/o.txt" o
    start_serve "$db" $serve_port FFRELAY__DELIVERY__MAX_BATCH_ITEMS=10
    stop_mock
    relay "$db" 0 enqueue conversions --format lines "$work/o.txt" >/dev/null
    log "outage: API down for ${outage_seconds}s"
    sleep "$outage_seconds"
    local attempts
    attempts=$(relay "$db" 0 stats --json | python3 -c 'import json,sys; print(sum(n for o, n in json.load(sys.stdin)["stats"]["recent_outcomes"]))')
    start_mock
    wait_drained "$db" 60; local delivered failed
    delivered=$(count "$db" delivered); failed=$(count "$db" failed)
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null; stop_mock
    log "outage: $attempts attempt rows during the outage, then delivered $delivered, failed $failed"
    [ "$delivered" = 500 ] && [ "$failed" = 0 ] && pass outage || fail outage "delivered $delivered, failed $failed"
}

scenario_clock() {
    if ! command -v faketime >/dev/null; then log "clock: skipped, faketime is missing (apt-get install faketime)"; return; fi
    local db=$work/clock.db stamp=$work/faketime
    echo "+0" >"$stamp"
    start_mock --latency 5ms
    make_lines 3000 "$work/c.txt" c
    relay "$db" 0 enqueue conversions --format lines "$work/c.txt" >/dev/null
    # Only the wall clock jumps, as with NTP; the monotonic clock keeps running.
    start_serve "$db" $serve_port FFRELAY__DELIVERY__MAX_BATCH_ITEMS=20 \
        LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
        FAKETIME_TIMESTAMP_FILE="$stamp" FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1
    sleep 1; echo "+2h" >"$stamp"; sleep 1; echo "+0" >"$stamp"
    wait_drained "$db" 60; local delivered accepted_items
    delivered=$(count "$db" delivered); accepted_items=$(accepted)
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null; stop_mock
    log "clock: wall clock +2h then back: delivered $delivered, items accepted $accepted_items"
    [ "$delivered" = 3000 ] && [ "$accepted_items" -ge 3000 ] && pass clock || fail clock "delivered $delivered"
}

scenario_twodaemons() {
    local db=$work/two.db
    start_mock --latency 2ms
    make_lines 5000 "$work/t.txt" t
    relay "$db" 0 enqueue conversions --format lines "$work/t.txt" >/dev/null
    start_serve "$db" $serve_port FFRELAY__DELIVERY__MAX_BATCH_ITEMS=20; local first=$serve_pid
    start_serve "$db" $((serve_port + 2)) FFRELAY__DELIVERY__MAX_BATCH_ITEMS=20 || { fail twodaemons "second daemon did not start"; return; }
    local second=$serve_pid
    wait_drained "$db" 120; local delivered accepted_items
    delivered=$(count "$db" delivered); accepted_items=$(accepted)
    kill -TERM "$first" "$second"; wait "$first" "$second" 2>/dev/null; stop_mock
    log "twodaemons: delivered $delivered, items accepted by the API $accepted_items"
    [ "$delivered" = 5000 ] && [ "$accepted_items" = 5000 ] && pass twodaemons \
        || fail twodaemons "delivered $delivered, accepted $accepted_items"
}

all=(kill9 sigterm fulldisk readonly removed outage clock twodaemons)
chosen=("${@:-${all[@]}}")
for name in "${chosen[@]}"; do
    if ! declare -F "scenario_$name" >/dev/null; then echo "unknown scenario $name; choose from ${all[*]}"; exit 2; fi
done
for name in "${chosen[@]}"; do
    log "scenario $name"
    "scenario_$name"
done

echo
printf '%s\n' "${results[@]}"
failed=$(printf '%s\n' "${results[@]}" | grep -c '^FAIL' || true)
passed=$(printf '%s\n' "${results[@]}" | grep -c '^PASS' || true)
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
