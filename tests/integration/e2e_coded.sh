#!/usr/bin/env bash
# Coded columns end to end (docs/FORMAT_V2.md, "Coded columns"): a fleet with dropped samples replayed by
# `telepack ingest --layout coded` into the real broker (partition packs), the same file by the default layout into
# another topic; the coded packs must be what the broker holds (coded magic in the messages' content), smaller than
# the plain ones, and `telepack sink` (no option: it reads the magic) must load every record into the real ClickHouse
# once, bit for bit.
. "$(dirname "$0")/../support/lib.sh"
e2e_init coded

gen_args=(--vehicles 2000 --seconds 60 --drop-rate 0.01 --seed 11)
e2e_expected "${gen_args[@]}"
"$TP" gen "${gen_args[@]}" --out "$E2E_WORK/fleet.ndjson" -q || e2e_fail "telepack gen --out failed"
e2e_log "expected records ready: $E2E_EXPECTED_N"

e2e_topic "$TOPIC" 4
e2e_topic "$TOPIC-plain" 4
"$TP" ingest --brokers "$BROKERS" --topic "$TOPIC" --layout coded --from "$E2E_WORK/fleet.ndjson" \
    >"$E2E_WORK/ingest-coded.log" 2>&1 || e2e_fail "ingest --layout coded: $(tail -3 "$E2E_WORK/ingest-coded.log")"
"$TP" ingest --brokers "$BROKERS" --topic "$TOPIC-plain" --from "$E2E_WORK/fleet.ndjson" \
    >"$E2E_WORK/ingest-plain.log" 2>&1 || e2e_fail "ingest (columns): $(tail -3 "$E2E_WORK/ingest-plain.log")"
packed_bytes() { sed -n 's/.*packs out ([0-9]* records, \([0-9]*\) bytes.*/\1/p' "$1" | tail -n 1; }
coded=$(packed_bytes "$E2E_WORK/ingest-coded.log") plain=$(packed_bytes "$E2E_WORK/ingest-plain.log")
e2e_log "packs: coded $coded bytes, plain columns $plain bytes for $E2E_EXPECTED_N records"
[ -n "$coded" ] && [ -n "$plain" ] || e2e_fail "no byte counts in the ingest summaries"
[ "$coded" -lt "$plain" ] || e2e_fail "coded packs ($coded bytes) are not smaller than column packs ($plain bytes)"

# what the broker holds: the first message's value is a zstd frame whose content starts with the coded magic
timeout 60 "$KCAT" -C -b "$BROKERS" -t "$TOPIC" -p 0 -o beginning -c 1 -e -q -f '%s' >"$E2E_WORK/first.zst" \
    2>"$E2E_WORK/kcat.err" || e2e_fail "kcat could not read $TOPIC: $(cat "$E2E_WORK/kcat.err")"
zstd -dcq <"$E2E_WORK/first.zst" >"$E2E_WORK/first.content" || e2e_fail "the first message is not a zstd frame"
magic=$(head -c 4 "$E2E_WORK/first.content" | od -An -tx1 | tr -d ' \n')
[ "$magic" = 00546333 ] || e2e_fail "the first pack's content starts with $magic, not the coded version-3 magic 00546333"

e2e_database
wh="clickhouse://${CH#http://}/$DB"
e2e_sink sink "$BROKERS" "$wh"
e2e_until 120 "$E2E_EXPECTED_N records in ClickHouse" ch_complete "$E2E_EXPECTED_N"
e2e_stop sink
e2e_log "sink: $(e2e_summary sink)"
final=$(ch_rows FINAL)
[ "$final" -eq "$E2E_EXPECTED_N" ] || e2e_fail "count() FINAL is $final, expected $E2E_EXPECTED_N"
raw=$(ch_rows)
[ "$raw" -eq "$E2E_EXPECTED_N" ] || e2e_fail "count() is $raw: records loaded twice ($E2E_EXPECTED_N expected)"
e2e_compare_clickhouse
e2e_pass "$E2E_EXPECTED_N records, ingest --layout coded ($coded bytes of packs, plain $plain) -> Kafka -> sink -> ClickHouse"
