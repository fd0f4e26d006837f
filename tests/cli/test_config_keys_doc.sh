#!/usr/bin/env bash
# docs/CONFIG.md lists the keys of the pipeline file exactly as the commands accept them: each "<!-- keys: CMD -->"
# block equals `telepack CMD --config-keys`, and every command that takes --config has its block (tools/config-keys-doc
# rewrites the blocks).
# Usage: test_config_keys_doc.sh SOURCE_ROOT
set -u
doc=$1/docs/CONFIG.md
tp=${TELEPACK:?set TELEPACK to the telepack binary}
fails=0
for c in "ingest" "ingest --schema x" "sink"; do
    want=$(awk -v tag="<!-- keys: $c -->" '$0 == tag { on = 1; next } on && /^```text/ { next } on && /^```/ { exit } on' "$doc")
    # shellcheck disable=SC2086
    got=$("$tp" $c --config-keys)
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
        echo "FAIL: docs/CONFIG.md's keys of 'telepack $c' differ from 'telepack $c --config-keys' (run tools/config-keys-doc):"
        diff <(printf '%s\n' "$want") <(printf '%s\n' "$got")
        fails=$((fails + 1))
    fi
done
[ $fails = 0 ] && echo "ok"
exit $((fails > 0))
