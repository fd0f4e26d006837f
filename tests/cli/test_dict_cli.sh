#!/bin/sh
# CLI test for zstd dictionaries: `dict train` on NDJSON and on packs, `dict info`, `pack --dict` | `inspect
# --dict-dir` gives back exactly the records of plain packs and is smaller, inspect without the dictionary names its
# id, hostile dictionary files and bad options exit 2 with a sentence, `ingest --dict` on the mock cluster.
# Needs the TELEPACK environment variable (set by tests/meson.build) pointing at the binary.
set -u
T=${TELEPACK:?set TELEPACK to the telepack binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
check() { checks=$((checks + 1)); }
# expect STATUS TEXT CMD...: CMD exits STATUS and its stderr holds TEXT
expect() {
    want=$1 text=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    st=$?
    check
    [ $st -eq "$want" ] || fail "$* exited $st, want $want: $(cat "$tmp/err")"
    check
    grep -qF -- "$text" "$tmp/err" || fail "$*: stderr lacks '$text': $(cat "$tmp/err")"
}

"$T" gen --vehicles 40 --seconds 600 >"$tmp/fleet.ndjson" 2>/dev/null
"$T" dict train --from "$tmp/fleet.ndjson" --out "$tmp/f.zdict" --batch-records 20 >"$tmp/info" 2>"$tmp/err"
st=$?
check
[ $st -eq 0 ] || fail "dict train on NDJSON failed: $(cat "$tmp/err")"
id=$(sed -n 's/.*zstd dictionary id \([0-9]*\),.*/\1/p' "$tmp/info")
check
[ -n "$id" ] && [ "$id" -ge 32768 ] || fail "dict train printed no id in range: $(cat "$tmp/info")"
check
[ "$(wc -c <"$tmp/f.zdict")" -le 8192 ] || fail "dictionary larger than the default 8K"
"$T" dict info "$tmp/f.zdict" >"$tmp/info2" 2>&1
check
grep -q "id $id," "$tmp/info2" || fail "dict info disagrees with train: $(cat "$tmp/info2")"

"$T" pack -q --in "$tmp/fleet.ndjson" --out "$tmp/plain.packs" --batch-records 20
"$T" pack -q --in "$tmp/fleet.ndjson" --out "$tmp/dict.packs" --batch-records 20 --dict "$tmp/f.zdict"
plain=$(wc -c <"$tmp/plain.packs") withd=$(wc -c <"$tmp/dict.packs")
check
[ "$withd" -lt "$plain" ] || fail "packs with the dictionary ($withd bytes) not smaller than without ($plain)"
mkdir "$tmp/dir"
cp "$tmp/f.zdict" "$tmp/dir/$id.zdict"
echo "notes" >"$tmp/dir/README"
"$T" inspect "$tmp/plain.packs" >"$tmp/plain.out" 2>/dev/null
"$T" inspect --dict-dir "$tmp/dir" "$tmp/dict.packs" >"$tmp/dict.out" 2>"$tmp/err"
st=$?
check
[ $st -eq 0 ] || fail "inspect --dict-dir failed: $(cat "$tmp/err")"
check
cmp -s "$tmp/plain.out" "$tmp/dict.out" || fail "inspect prints different records with the dictionary"
check
[ "$(wc -l <"$tmp/dict.out")" -eq "$(wc -l <"$tmp/fleet.ndjson")" ] || fail "record count differs"
# trained again on the packs themselves: another dictionary, another id
"$T" dict train --from "$tmp/plain.packs" --out "$tmp/g.zdict" --size 4K >"$tmp/info3" 2>"$tmp/err"
st=$?
check
[ $st -eq 0 ] || fail "dict train on packs failed: $(cat "$tmp/err")"
check
grep -q "id $id," "$tmp/info3" && fail "a different dictionary got the same id $id"

expect 2 "zstd dictionary $id" "$T" inspect "$tmp/dict.packs"
expect 2 "dictionary $id" "$T" dict train --from "$tmp/dict.packs" --out "$tmp/x.zdict"
head -n 20 "$tmp/fleet.ndjson" >"$tmp/small.ndjson"
expect 2 "too few" "$T" dict train --from "$tmp/small.ndjson" --out "$tmp/x.zdict"
check
[ ! -e "$tmp/x.zdict" ] || fail "dict train wrote a file after refusing"
expect 2 "--from" "$T" dict train --out "$tmp/x.zdict"
expect 2 "--size" "$T" dict train --from "$tmp/fleet.ndjson" --out "$tmp/x.zdict" --size 2M
expect 2 "unknown subcommand" "$T" dict frobnicate
expect 2 "needs --codec zstd" "$T" pack --codec none --layout rows --dict "$tmp/f.zdict" --out "$tmp/x"
# hostile dictionary files
printf 'hello, not a dictionary' >"$tmp/bad.zdict"
expect 2 "37 a4 30 ec" "$T" dict info "$tmp/bad.zdict"
expect 2 "37 a4 30 ec" "$T" pack --in "$tmp/fleet.ndjson" --out "$tmp/x" --dict "$tmp/bad.zdict"
head -c 100 "$tmp/f.zdict" >"$tmp/cut.zdict"
expect 2 "corrupt" "$T" dict info "$tmp/cut.zdict"
head -c 1100000 /dev/zero >"$tmp/big.zdict"
expect 2 "1 MiB" "$T" dict info "$tmp/big.zdict"
expect 1 "cannot open" "$T" dict info "$tmp/none.zdict"
cp "$tmp/bad.zdict" "$tmp/dir/zz.zdict"
expect 2 "zz.zdict" "$T" inspect --dict-dir "$tmp/dir" "$tmp/dict.packs"
rm "$tmp/dir/zz.zdict"
cp "$tmp/f.zdict" "$tmp/dir/again.zdict"
expect 2 "loaded twice" "$T" inspect --dict-dir "$tmp/dir" "$tmp/dict.packs"
expect 2 "cannot open dictionary directory" "$T" inspect --dict-dir "$tmp/nodir" "$tmp/dict.packs"
mkdir "$tmp/dir2"
cp "$tmp/bad.zdict" "$tmp/dir2/zz.zdict"
expect 2 "zz.zdict" "$T" sink --brokers 127.0.0.1:1 --topic t --group g --warehouse null: --dict-dir "$tmp/dir2"
# ingest --dict on the mock cluster: runs, and a bad file stops it before anything is read
"$T" ingest --topic packs -X test.mock.num.brokers=1 -X log_level=3 --linger-ms 50 --from "$tmp/fleet.ndjson" \
    --dict "$tmp/f.zdict" >"$tmp/out" 2>"$tmp/err"
st=$?
check
[ $st -eq 0 ] || fail "ingest --dict failed: $(tail -3 "$tmp/err")"
expect 2 "37 a4 30 ec" "$T" ingest --topic packs -X test.mock.num.brokers=1 --from "$tmp/fleet.ndjson" \
    --dict "$tmp/bad.zdict"
"$T" ingest --help | grep -q -- "--dict FILE" || fail "ingest --help lacks --dict"
"$T" sink --help | grep -q -- "--dict-dir DIR" || fail "sink --help lacks --dict-dir"
"$T" dict --help | grep -q "dict train" || fail "dict --help lacks train"
checks=$((checks + 3))

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
