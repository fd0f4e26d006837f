#!/usr/bin/env bash
# `telepack demo` end to end on a small fleet: exit 0, the summary says every record arrived exactly once, and the
# SQLite table, read independently with the sqlite3 command, holds exactly the records the summary says were sent.
set -euo pipefail
: "${TELEPACK:?TELEPACK must point at the telepack binary}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$TELEPACK" demo --help | grep -q -- '--vehicles' || fail "demo --help does not list --vehicles"
"$TELEPACK" demo --vehicles 0 2>"$work/err" && fail "demo accepted --vehicles 0"
grep -q "vehicles" "$work/err" || fail "the error for --vehicles 0 does not name the option"

"$TELEPACK" demo --vehicles 300 --seconds 20 --linger-ms 200 --db "$work/demo.db" >"$work/out" 2>"$work/err" \
    || { cat "$work/out" "$work/err" >&2; fail "demo exited non-zero"; }
grep -q "every record exactly once, field by field" "$work/out" || { cat "$work/out" >&2; fail "no exactly-once verdict"; }
sent=$(sed -n 's/^  records sent *\([0-9]*\) .*/\1/p' "$work/out")
[ -n "$sent" ] && [ "$sent" -gt 5000 ] || fail "records sent '$sent' is not the ~6000 expected for 300 vehicles x 20 s"
rows=$(sqlite3 "$work/demo.db" "SELECT COUNT(*) FROM vehicle_positions")
distinct=$(sqlite3 "$work/demo.db" "SELECT COUNT(*) FROM (SELECT DISTINCT vehicle_id, sampled_at_ms, seq FROM vehicle_positions)")
vehicles=$(sqlite3 "$work/demo.db" "SELECT COUNT(DISTINCT vehicle_id) FROM vehicle_positions")
[ "$rows" = "$sent" ] || fail "table has $rows rows, demo sent $sent"
[ "$distinct" = "$sent" ] || fail "table has $distinct distinct identities, demo sent $sent"
[ "$vehicles" = 300 ] || fail "table has $vehicles vehicles, want 300"
# Per vehicle, seq runs 1..n without holes (the simulator numbers emitted records).
holes=$(sqlite3 "$work/demo.db" "SELECT COUNT(*) FROM (SELECT vehicle_id FROM vehicle_positions GROUP BY vehicle_id HAVING MAX(seq) != COUNT(*) OR MIN(seq) != 1)")
[ "$holes" = 0 ] || fail "$holes vehicles have gaps or duplicates in seq"
# Both layouts are reported, and on the simulator's quantized GPS the column layout is the smaller one.
line=$(grep '^  both layouts' "$work/out") || fail "no 'both layouts' line in the summary"
rows_b=$(sed -n 's/.*rows \([0-9.]*\) B\/record.*/\1/p' <<<"$line")
cols_b=$(sed -n 's/.*columns \([0-9.]*\) B\/record.*/\1/p' <<<"$line")
awk -v r="$rows_b" -v c="$cols_b" 'BEGIN { exit !(r > 0 && c > 0 && c < r) }' \
    || fail "columns ($cols_b B/record) not smaller than rows ($rows_b B/record)"
grep -q '^  pace  *replay, as fast as it goes' "$work/out" || fail "the replay run does not say it is a replay"
replay_b=$(sed -n 's/^  bytes as packs .*(\([0-9.]*\) B\/record.*/\1/p' "$work/out")

# --live paces the fleet as a live one sends (200 vehicles, one record each a second): packs hold what the linger
# collects, so a record costs more than in the replay above, and the summary says whose bytes these are.
"$TELEPACK" demo --live --rate 5 --vehicles 200 2>"$work/err" && fail "demo accepted --live with --rate"
grep -q "give one of --live and --rate" "$work/err" || fail "--live --rate: $(cat "$work/err")"
"$TELEPACK" demo --live --vehicles 200 --seconds 4 --db "$work/live.db" >"$work/live" 2>"$work/err" \
    || { cat "$work/live" "$work/err" >&2; fail "demo --live exited non-zero"; }
grep -q "every record exactly once, field by field" "$work/live" || { cat "$work/live" >&2; fail "--live: no exactly-once verdict"; }
grep -q '^  pace  *live: 200 records/s, one record per vehicle every 1000 ms' "$work/live" || fail "--live: no pace line"
live_b=$(sed -n 's/^  bytes as packs .*(\([0-9.]*\) B\/record.*/\1/p' "$work/live")
awk -v l="$live_b" -v r="$replay_b" 'BEGIN { exit !(l > r && r > 0) }' \
    || fail "live packs ($live_b B/record) are not dearer than the replay's ($replay_b B/record)"
# --layout coded: the same fleet, every record once, in fewer bytes than the column layout's replay above.
"$TELEPACK" demo --layout coded --vehicles 300 --seconds 20 --linger-ms 200 --db "$work/coded.db" >"$work/coded" \
    2>"$work/err" || { cat "$work/coded" "$work/err" >&2; fail "demo --layout coded exited non-zero"; }
grep -q "every record exactly once, field by field" "$work/coded" || { cat "$work/coded" >&2; fail "coded: no exactly-once verdict"; }
grep -q "coded layout, on the wire" "$work/coded" || fail "coded: the summary does not name the layout"
coded_b=$(sed -n 's/^  bytes as packs .*(\([0-9.]*\) B\/record.*/\1/p' "$work/coded")
awk -v c="$coded_b" -v r="$replay_b" 'BEGIN { exit !(c > 0 && c < r) }' \
    || fail "coded packs ($coded_b B/record) are not smaller than column packs ($replay_b B/record)"
echo "demo: $sent records, exactly once; rows $rows_b B/record, columns $cols_b B/record; live $live_b, replay $replay_b, coded $coded_b"
