# shellcheck shell=bash
# tests/support/lib.sh: shared helpers of the end-to-end and crash tests (issue 5). Source it, then call
# e2e_init NAME: service checks (skip = exit 77), unique topic / group / database names, a work directory, background
# processes with one log each and cleanup on every exit path, bounded waits, private Kafka / ClickHouse servers for
# the tests that stop and start them, and the exact comparison of what `telepack gen` sent with a warehouse.
#
# Environment: TELEPACK (the binary), TP_TEST_KAFKA_BROKERS, TP_TEST_CLICKHOUSE_URL, TP_REQUIRE_INTEGRATION,
# TP_SOURCE_ROOT (optional), TP_KEEP_WORK=1 keeps the work directory (logs, expected and actual rows).

set -euo pipefail

e2e_log() { echo "[$E2E_NAME +$((SECONDS - E2E_T0))s] $*" >&2; }

# e2e_fail MESSAGE: print the message and the end of every process log, then exit 1 (the EXIT trap cleans up).
e2e_fail() {
    echo "FAIL [$E2E_NAME +$((SECONDS - E2E_T0))s]: $*" >&2
    local f
    for f in "$E2E_WORK"/*.log; do
        [ -f "$f" ] || continue
        echo "---- last lines of ${f##*/}" >&2
        tail -n 25 "$f" | tr '\r' '\n' | tail -n 25 >&2
    done
    [ -n "${TP_KEEP_WORK:-}" ] && echo "work directory kept: $E2E_WORK" >&2
    exit 1
}

e2e_require_services() {
    local v missing=()
    for v in TP_TEST_KAFKA_BROKERS TP_TEST_CLICKHOUSE_URL; do
        [ -n "${!v:-}" ] || missing+=("$v")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: ${missing[*]} not set but TP_REQUIRE_INTEGRATION=1; start the services (tools/kafka start," \
            "tools/clickhouse start) and eval \"\$(tools/kafka env)\" \"\$(tools/clickhouse env)\"." >&2
        exit 1
    fi
    echo "SKIP: ${missing[*]} not set (run 'tools/kafka start', 'tools/clickhouse start' and eval their 'env')." >&2
    exit 77
}

# e2e_init NAME: sets E2E_ROOT, TP (binary), BROKERS, CH (ClickHouse URL), TOPIC, GROUP, DB, E2E_WORK.
e2e_init() {
    E2E_NAME=$1
    E2E_T0=$SECONDS
    e2e_require_services
    E2E_ROOT=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
    TP=${TELEPACK:?TELEPACK must name the telepack binary}
    [ -x "$TP" ] || { echo "FAIL: TELEPACK=$TP is not an executable" >&2; exit 1; }
    local t
    for t in python3 curl; do
        command -v "$t" >/dev/null || { echo "FAIL: $t is needed by the end-to-end tests" >&2; exit 1; }
    done
    KCAT=$(type -P kcat || type -P kafkacat) || { echo "FAIL: kcat (Debian package kafkacat) is needed" >&2; exit 1; }
    BROKERS=$TP_TEST_KAFKA_BROKERS
    CH=${TP_TEST_CLICKHOUSE_URL%/}
    local uniq
    uniq=$$-$(date +%s)
    TOPIC=tp-e2e-$E2E_NAME-$uniq
    GROUP=$TOPIC-g
    DB=tp_e2e_${E2E_NAME//-/_}_${uniq//-/_}
    E2E_WORK=$(mktemp -d "${TMPDIR:-/tmp}/tp-e2e-$E2E_NAME.XXXXXX")
    E2E_CHECK="$E2E_ROOT/tests/support/e2e_check.py"
    E2E_PROTO="$E2E_ROOT/proto/telepack/v1/vehicle.proto"
    declare -gA E2E_PIDS=()
    E2E_TOPICS=()      # topic name patterns to delete on exit, with the broker they live on
    E2E_DBS=()         # ClickHouse databases to drop on exit (URL|DB)
    E2E_PK_STATE= E2E_PCH_STATE=
    trap e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    e2e_log "topic $TOPIC, database $DB, work $E2E_WORK"
}

e2e_cleanup() {
    local rc=$? name pid
    set +e
    for name in "${!E2E_PIDS[@]}"; do
        pid=${E2E_PIDS[$name]}
        kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    local d
    for d in "${E2E_DBS[@]}"; do
        curl -s --max-time 10 "${d%%|*}/" --data-binary "DROP DATABASE IF EXISTS ${d#*|}" >/dev/null 2>&1
    done
    local t
    for t in "${E2E_TOPICS[@]}"; do
        # TopicCommand takes a regular expression for --delete: the topic and its dead-letter topic at once.
        timeout 60 env TP_KAFKA_BOOTSTRAP="${t%%|*}" "$E2E_ROOT/tools/kafka" delete-topic "${t#*|}" >/dev/null 2>&1
    done
    e2e_kill_private_servers
    if [ "$rc" = 0 ] || [ "$rc" = 77 ]; then
        [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$E2E_WORK"
    elif [ -n "${TP_KEEP_WORK:-}" ]; then
        echo "work directory kept: $E2E_WORK" >&2
    else
        rm -rf "$E2E_WORK"
    fi
    exit "$rc"
}

e2e_pass() {
    e2e_log "PASS in $((SECONDS - E2E_T0)) s: $*"
    exit 0
}

# e2e_free_port: a TCP port on 127.0.0.1 nobody listens on right now.
e2e_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# e2e_until SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s until it succeeds; fail after SECONDS.
e2e_until() {
    local limit=$1 what=$2 t0=$SECONDS
    shift 2
    until "$@"; do
        [ $((SECONDS - t0)) -lt "$limit" ] || e2e_fail "timed out after $limit s waiting for $what"
        sleep 0.2
    done
}

# ---- processes -------------------------------------------------------------------------------------------------

# e2e_spawn NAME COMMAND...: run COMMAND in the background, stdout and stderr to $E2E_WORK/NAME.log.
e2e_spawn() {
    local name=$1
    shift
    "$@" >"$E2E_WORK/$name.log" 2>&1 &
    E2E_PIDS[$name]=$!
}

e2e_pid() { echo "${E2E_PIDS[$1]:?no process named $1}"; }
e2e_alive() { kill -0 "${E2E_PIDS[$1]:-0}" 2>/dev/null; }

# e2e_kill9 NAME: SIGKILL and reap.
e2e_kill9() {
    local pid=${E2E_PIDS[$1]:?no process named $1}
    kill -9 "$pid" 2>/dev/null || e2e_fail "$1 (pid $pid) had already exited before kill -9"
    wait "$pid" 2>/dev/null || true
    unset "E2E_PIDS[$1]"
}

# e2e_wait_exit NAME SECONDS: wait until the process ends by itself; sets E2E_STATUS to its exit status.
e2e_wait_exit() {
    local pid=${E2E_PIDS[$1]:?no process named $1} limit=$2 t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        [ $((SECONDS - t0)) -lt "$limit" ] || e2e_fail "$1 (pid $pid) did not finish within $limit s"
        sleep 0.2
    done
    E2E_STATUS=0
    wait "$pid" || E2E_STATUS=$?
    unset "E2E_PIDS[$1]"
}

# e2e_stop NAME [SECONDS]: SIGTERM, wait (default 60 s), fail unless it exits 0.
e2e_stop() {
    local pid=${E2E_PIDS[$1]:?no process named $1}
    kill -TERM "$pid" 2>/dev/null || true
    e2e_wait_exit "$1" "${2:-60}"
    [ "$E2E_STATUS" = 0 ] || e2e_fail "$1 exited with status $E2E_STATUS after SIGTERM"
}

# Prometheus sample of a /metrics endpoint: e2e_metric HOST:PORT NAME -> value (sum over label sets), or nothing.
e2e_metric() {
    curl -s --max-time 5 "http://$1/metrics" 2>/dev/null |
        awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2; f = 1 } END { if (f) printf "%.0f\n", s }'
}

# ---- Kafka and ClickHouse --------------------------------------------------------------------------------------

# e2e_topic NAME PARTITIONS [BROKERS]: create a topic; on the shared broker it and NAME.* are deleted on exit (a
# private broker is thrown away whole).
e2e_topic() {
    local b=${3:-$BROKERS}
    [ "$b" != "$BROKERS" ] || E2E_TOPICS+=("$b|$1.*")
    TP_KAFKA_BOOTSTRAP=$b timeout 90 "$E2E_ROOT/tools/kafka" create-topic "$1" "$2" 2>"$E2E_WORK/topic.err" ||
        { cat "$E2E_WORK/topic.err" >&2; e2e_fail "could not create topic $1 with $2 partitions on $b"; }
}

# chq SQL [URL]: one statement over HTTP; the answer on stdout; fails on a non-200 answer.
chq() {
    local url=${2:-$CH} out
    out=$(curl -sS --max-time 60 -w '\n%{http_code}' "$url/" --data-binary "$1" 2>&1) || {
        echo "$out" >&2
        return 1
    }
    [ "${out##*$'\n'}" = 200 ] || { echo "${out%$'\n'*}" >&2; return 1; }
    printf '%s' "${out%$'\n'*}"
}

# e2e_database [URL]: create $DB (on the shared server it is dropped on exit).
e2e_database() {
    local url=${1:-$CH}
    [ "$url" != "$CH" ] || E2E_DBS+=("$url|$DB")
    chq "CREATE DATABASE IF NOT EXISTS $DB" "$url" >/dev/null || e2e_fail "cannot create database $DB at $url"
}

# ch_rows [FINAL] [URL]: rows of $DB.vehicle_positions (0 while the table does not exist or the server is down).
ch_rows() {
    chq "SELECT count() FROM $DB.vehicle_positions ${1:-}" "${2:-$CH}" 2>/dev/null || echo 0
}

# Private servers for the tests that stop and start them: own state directory in the work directory, free ports.
pk() {
    TP_VAR_DIR=$E2E_WORK/pk TP_KAFKA_PORT=$E2E_PK_PORT TP_KAFKA_CONTROLLER_PORT=$E2E_PK_CPORT TP_KAFKA_SASL_PORT=$E2E_PK_SPORT \
        TP_KAFKA_HEAP=${TP_E2E_KAFKA_HEAP:-384m} TP_KAFKA_BOOTSTRAP=127.0.0.1:$E2E_PK_PORT \
        timeout 150 "$E2E_ROOT/tools/kafka" "$@"
}
pch() {
    TP_VAR_DIR=$E2E_WORK/pch TP_CLICKHOUSE_HTTP_PORT=$E2E_PCH_PORT TP_CLICKHOUSE_TCP_PORT=$E2E_PCH_TCP \
        TP_CLICKHOUSE_INTERSERVER_PORT=$E2E_PCH_IPORT TP_CLICKHOUSE_HTTPS_PORT=$E2E_PCH_SPORT \
        timeout 90 "$E2E_ROOT/tools/clickhouse" "$@"
}

# e2e_private_kafka: start a broker of this test only; sets PK_BROKERS.
e2e_private_kafka() {
    E2E_PK_PORT=$(e2e_free_port)
    E2E_PK_CPORT=$(e2e_free_port)
    E2E_PK_SPORT=$(e2e_free_port)
    E2E_PK_STATE=$E2E_WORK/pk/kafka
    PK_BROKERS=127.0.0.1:$E2E_PK_PORT
    pk start 2>"$E2E_WORK/pk-start.err" || { cat "$E2E_WORK/pk-start.err" >&2; e2e_fail "the private broker did not start"; }
    e2e_log "private broker on $PK_BROKERS: $(tail -n 1 "$E2E_WORK/pk-start.err")"
}

# e2e_private_clickhouse: start a ClickHouse server of this test only; sets PCH (its URL).
e2e_private_clickhouse() {
    E2E_PCH_PORT=$(e2e_free_port)
    E2E_PCH_TCP=$(e2e_free_port)
    E2E_PCH_IPORT=$(e2e_free_port)
    E2E_PCH_SPORT=$(e2e_free_port)
    E2E_PCH_STATE=$E2E_WORK/pch/clickhouse
    PCH=http://127.0.0.1:$E2E_PCH_PORT
    pch start 2>"$E2E_WORK/pch-start.err" ||
        { cat "$E2E_WORK/pch-start.err" >&2; e2e_fail "the private ClickHouse server did not start"; }
}

# On exit the private servers are killed outright (their data is thrown away): only a PID from their own pid file
# whose command line names their own state directory.
e2e_kill_private_servers() {
    local f pid
    for f in "$E2E_PK_STATE/kafka.pid" "$E2E_PCH_STATE/clickhouse.pid"; do
        [ -n "${f%/*}" ] && [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null)
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$E2E_WORK/"; then
            kill -9 "$pid" 2>/dev/null
        fi
    done
}

# ---- telepack processes ----------------------------------------------------------------------------------------

# e2e_ingest NAME PORT BROKERS [ARGS...]: start `telepack ingest` on 127.0.0.1:PORT for $TOPIC, wait until it listens.
e2e_ingest() {
    local name=$1 port=$2 b=$3
    shift 3
    e2e_spawn "$name" "$TP" ingest --brokers "$b" --topic "$TOPIC" --listen "127.0.0.1:$port" "$@"
    local t0=$SECONDS
    until port_open "$port"; do
        e2e_alive "$name" || e2e_fail "$name exited during start-up"
        [ $((SECONDS - t0)) -lt 30 ] || e2e_fail "$name did not listen on port $port within 30 s"
        sleep 0.1
    done
}

# e2e_sink NAME BROKERS WAREHOUSE [ARGS...]: start `telepack sink` in group $GROUP for $TOPIC. A short session
# timeout makes a killed member's partitions move within seconds.
e2e_sink() {
    local name=$1 b=$2 wh=$3
    shift 3
    e2e_spawn "$name" "$TP" sink --brokers "$b" --topic "$TOPIC" --group "$GROUP" --warehouse "$wh" --create-table \
        --flush-ms 200 -X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 "$@"
}

# e2e_expected GEN_ARGS...: add what `telepack gen GEN_ARGS` sends (gen is deterministic for a seed) to
# $E2E_WORK/expected as canonical sorted lines; E2E_EXPECTED_N counts them. Call it once per gen run.
E2E_EXPECTED_N=0
e2e_expected() {
    local n
    "$TP" gen "$@" --out "$E2E_WORK/expected.ndjson" -q || e2e_fail "telepack gen $* --out failed"
    n=$(python3 "$E2E_CHECK" canon "$E2E_WORK/expected.ndjson" "$E2E_PROTO" "$E2E_WORK/expected.more") ||
        e2e_fail "could not canonicalise gen's NDJSON"
    E2E_EXPECTED_N=$((E2E_EXPECTED_N + n))
    touch "$E2E_WORK/expected"
    LC_ALL=C sort -S 256M -T "$E2E_WORK" "$E2E_WORK/expected" "$E2E_WORK/expected.more" -o "$E2E_WORK/expected"
    rm -f "$E2E_WORK/expected.more" "$E2E_WORK/expected.ndjson"
}

# e2e_compare_clickhouse [URL]: $DB.vehicle_positions FINAL must equal $E2E_WORK/expected exactly, every float and
# double compared as its IEEE-754 bit pattern.
e2e_compare_clickhouse() {
    local url=${1:-$CH}
    curl -sS --fail --max-time 300 "$url/" -o "$E2E_WORK/actual.unsorted" --data-binary "SELECT vehicle_id,
        sampled_at_ms, seq, reinterpretAsUInt64(reinterpretAsString(latitude)),
        reinterpretAsUInt64(reinterpretAsString(longitude)), reinterpretAsUInt32(reinterpretAsString(speed_kmh)),
        reinterpretAsUInt32(reinterpretAsString(heading_deg)), reinterpretAsUInt32(reinterpretAsString(accuracy_m)),
        meter_status FROM $DB.vehicle_positions FINAL FORMAT TabSeparated" ||
        e2e_fail "could not read $DB.vehicle_positions back from ClickHouse"
    e2e_compare_actual
}

# e2e_compare_sqlite PATH: the SQLite table (no FINAL, no GROUP BY) must equal $E2E_WORK/expected exactly.
e2e_compare_sqlite() {
    python3 "$E2E_CHECK" sqlite "$1" vehicle_positions "$E2E_WORK/actual.unsorted" >/dev/null ||
        e2e_fail "could not read the SQLite warehouse $1"
    e2e_compare_actual
}

e2e_compare_actual() {
    LC_ALL=C sort -S 256M -T "$E2E_WORK" "$E2E_WORK/actual.unsorted" -o "$E2E_WORK/actual"
    rm -f "$E2E_WORK/actual.unsorted"
    if ! cmp -s "$E2E_WORK/expected" "$E2E_WORK/actual"; then
        python3 "$E2E_CHECK" diff "$E2E_WORK/expected" "$E2E_WORK/actual" >&2 || true
        e2e_fail "the warehouse does not hold exactly the $E2E_EXPECTED_N records gen sent"
    fi
    e2e_log "warehouse equals gen's $E2E_EXPECTED_N records exactly (all fields, bit for bit)"
}

# e2e_topic_records TOPIC BROKERS: "RECORDS MESSAGES" summed over the tp-records headers of every message.
e2e_topic_records() {
    timeout 120 "$KCAT" -C -b "$2" -t "$1" -e -q -f '%h\n' >"$E2E_WORK/headers.txt" 2>"$E2E_WORK/kcat.err" ||
        e2e_fail "kcat could not read topic $1: $(cat "$E2E_WORK/kcat.err")"
    python3 "$E2E_CHECK" headers-sum "$E2E_WORK/headers.txt"
}

# ch_complete N [URL]: true once $DB.vehicle_positions holds N distinct records (FINAL is only asked once the
# cheap count() got there).
ch_complete() {
    [ "$(ch_rows '' "${2:-$CH}")" -ge "$1" ] && [ "$(ch_rows FINAL "${2:-$CH}")" -ge "$1" ]
}

# e2e_summary LOG: the summary line a telepack worker printed on exit.
e2e_summary() { grep -a -o '\(ingest \)\?summary: .*' "$E2E_WORK/$1.log" | tail -n 1; }
