#!/usr/bin/env bash
# Standard tools read telepack packs: `zstd -d` decompresses a file of packs (concatenated frames) as one stream,
# and every varint-delimited record decodes with `protoc --decode` against the .proto, with the expected values.
# Usage: test_interop.sh INTEROP_WRITER PROTO_DIR
set -eu
writer=$1
protodir=$2
for tool in zstd protoc python3; do
    command -v "$tool" >/dev/null || { echo "$tool not installed: skipping"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$writer" "$tmp/packs.zst" zstd 2 3
zstd -q -d -c "$tmp/packs.zst" >"$tmp/content"
"$writer" "$tmp/packs.raw" none 2 3
cmp "$tmp/content" "$tmp/packs.raw" || { echo "FAIL: zstd -d output differs from the codec none content"; exit 1; }

# Split the delimited stream (varint length, message) and decode each message with protoc.
python3 - "$tmp" "$protodir" <<'PY'
import subprocess, sys
tmp, protodir = sys.argv[1], sys.argv[2]
data = open(tmp + "/content", "rb").read()
pos, msgs = 0, []
while pos < len(data):
    n = shift = 0
    while True:
        b = data[pos]; pos += 1
        n |= (b & 0x7f) << shift; shift += 7
        if b < 0x80: break
    msgs.append(data[pos:pos + n]); pos += n
assert pos == len(data), "delimited stream does not end on a record boundary"
assert len(msgs) == 6, "expected 6 records, found %d" % len(msgs)
status = ["METER_STATUS_UNKNOWN", "METER_STATUS_VACANT", "METER_STATUS_HIRED"]
failed = 0
for k, m in enumerate(msgs):
    p, i = divmod(k, 3)
    out = subprocess.run(["protoc", "--proto_path=" + protodir, "--decode=telepack.v1.VehicleRecord",
                          protodir + "/telepack/v1/vehicle.proto"], input=m, capture_output=True, check=True).stdout
    got = dict(line.split(": ", 1) for line in out.decode().splitlines())
    want = {"vehicle_id": str(1000 + p), "sampled_at_ms": str(1700000000000 + 1000 * i), "seq": str(i + 1),
            "latitude": repr(52.52 + i * 1e-6), "longitude": repr(13.405 - i * 1e-6),
            "speed_kmh": "%g" % (i % 100 + 0.5), "accuracy_m": "2.5"}
    if i > 0:
        want["heading_deg"] = str(i * 10)
        want["meter_status"] = status[i]
    if got != want:
        failed += 1
        print("record %d: protoc decoded %r, expected %r" % (k, got, want))
print("%d records decoded by protoc, %d differ" % (len(msgs), failed))
sys.exit(1 if failed else 0)
PY
