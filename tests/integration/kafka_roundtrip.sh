#!/usr/bin/env bash
# Integration smoke test of the real Kafka broker: 10,000 keyed messages through an 8-partition topic with kcat,
# read back directly and through a consumer group; checks the exact multiset, per-key order and committed offsets.
set -euo pipefail

if [ -z "${TP_TEST_KAFKA_BROKERS:-}" ]; then
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: TP_TEST_KAFKA_BROKERS is not set but TP_REQUIRE_INTEGRATION=1; start a broker with 'tools/kafka start' and 'eval \"\$(tools/kafka env)\"'." >&2
        exit 1
    fi
    echo "SKIP: TP_TEST_KAFKA_BROKERS is not set (run 'tools/kafka start' and 'eval \"\$(tools/kafka env)\"')." >&2
    exit 77
fi

kcat=$(command -v kcat || command -v kafkacat) || { echo "FAIL: kcat is not installed (Debian package kafkacat)" >&2; exit 1; }
kcat() { command "$kcat" "$@"; }

root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
brokers=$TP_TEST_KAFKA_BROKERS
topic=tp-it-roundtrip-$$-$RANDOM
group=$topic-group
partitions=8
count=10000
keys=97
work=$(mktemp -d)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cleanup() {
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" create-topic "$topic" "$partitions"

# Message i has key v<i mod keys> and value "<key> <per-key sequence> <payload>"; a key's sequence numbers are
# produced in increasing order, so they must come back in increasing order.
awk -v n="$count" -v k="$keys" 'BEGIN {
    for (i = 0; i < n; i++) {
        key = sprintf("v%03d", i % k)
        seq[key]++
        printf "%s\t%s %06d %08x%08x\n", key, key, seq[key], (i * 2654435761) % 4294967296, i
    }
}' >"$work/produced"
[ "$(wc -l <"$work/produced")" -eq "$count" ] || fail "generated $(wc -l <"$work/produced") messages, expected $count"

kcat -P -b "$brokers" -t "$topic" -K $'\t' -X enable.idempotence=true -X acks=all -X linger.ms=5 \
    <"$work/produced" 2>"$work/produce.err" || { cat "$work/produce.err" >&2; fail "kcat could not produce to $topic"; }

# check CONSUMED: lines "key<TAB>value<TAB>partition<TAB>offset" must be exactly what was produced, each key on one
# partition, sequence numbers per key strictly increasing in offset order, offsets per partition 0..n-1 without gaps.
check() {
    local what=$1 got=$2
    [ "$(wc -l <"$got")" -eq "$count" ] || fail "$what: read $(wc -l <"$got") messages, expected $count"
    cut -f1,2 "$got" | LC_ALL=C sort >"$work/got.sorted"
    LC_ALL=C sort "$work/produced" >"$work/produced.sorted"
    cmp -s "$work/produced.sorted" "$work/got.sorted" ||
        { diff "$work/produced.sorted" "$work/got.sorted" | head -n 10 >&2; fail "$what: messages differ from what was produced"; }
    LC_ALL=C sort -t $'\t' -k3,3n -k4,4n "$got" | awk -F'\t' -v what="$what" -v parts="$partitions" '
        {
            split($2, v, " ")
            if ($1 != v[1]) { printf "%s: key %s carries value of key %s\n", what, $1, v[1]; bad = 1 }
            if ($1 in part && part[$1] != $3) { printf "%s: key %s on partitions %s and %s\n", what, $1, part[$1], $3; bad = 1 }
            part[$1] = $3
            if (v[2] + 0 != last[$1] + 1) { printf "%s: key %s: sequence %d after %d\n", what, $1, v[2], last[$1]; bad = 1 }
            last[$1] = v[2] + 0
            if ($4 + 0 != next_off[$3] + 0) { printf "%s: partition %s: offset %d, expected %d\n", what, $3, $4, next_off[$3]; bad = 1 }
            next_off[$3] = $4 + 1
            used[$3] = 1
        }
        END {
            n = 0
            for (p in used) n++
            if (n < 2) { printf "%s: all keys landed on %d partition(s) of %d\n", what, n, parts; bad = 1 }
            exit bad
        }' >&2 || fail "$what: order or placement is wrong (see above)"
}

fmt='%k\t%s\t%p\t%o\n'
kcat -C -b "$brokers" -t "$topic" -o beginning -e -q -f "$fmt" >"$work/direct" 2>"$work/direct.err" ||
    { cat "$work/direct.err" >&2; fail "kcat could not consume $topic"; }
check "direct consumer" "$work/direct"

kcat -b "$brokers" -G "$group" -X auto.offset.reset=earliest -e -q -f "$fmt" "$topic" >"$work/group" 2>"$work/group.err" ||
    { cat "$work/group.err" >&2; fail "kcat could not consume $topic in group $group"; }
check "group consumer" "$work/group"

# The group committed its offsets: a second run of the same group reads nothing.
kcat -b "$brokers" -G "$group" -X auto.offset.reset=earliest -e -q -f "$fmt" "$topic" >"$work/again" 2>"$work/again.err" ||
    { cat "$work/again.err" >&2; fail "kcat could not consume $topic in group $group a second time"; }
[ ! -s "$work/again" ] || fail "group $group read $(wc -l <"$work/again") messages again after committing its offsets"

echo "ok: $count messages, $keys keys, $partitions partitions: exact multiset, per-key order, committed offsets"
