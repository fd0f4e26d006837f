#!/usr/bin/env python3
"""Exact comparison helpers of the end-to-end tests (issue 5): what `telepack gen` sent against what a warehouse holds.

  e2e_check.py canon NDJSON PROTO OUT
      One canonical line per record of gen's NDJSON: vehicle_id, sampled_at_ms, seq, the IEEE-754 bit patterns of
      latitude/longitude (float64) and speed_kmh/heading_deg/accuracy_m (float32, rounded from the decimal text
      exactly, ties to even), meter_status as its number (names from PROTO). Tab separated.
  e2e_check.py sqlite DB TABLE OUT
      The same canonical lines from a SQLite warehouse (REAL columns hold the doubles; a float column must hold a
      double that is exactly a float32, else the row is printed with a marker that cannot match).
  e2e_check.py diff EXPECTED ACTUAL
      EXPECTED and ACTUAL are sorted canonical files; prints how many records are missing, extra, duplicated or
      differ, with examples, and exits 1 unless they are equal line for line.
  e2e_check.py headers-sum KCAT_OUT
      Sums tp-records=N (or the compact tp=V,N) over lines of `kcat -f '%h\\n'` output; prints the sum and the message count.
"""
import json
from array import array
import math
import re
import sqlite3
import struct
import sys
from fractions import Fraction

F32_MAX = Fraction(struct.unpack("<f", b"\xff\xff\x7f\x7f")[0])


def f64_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def f32_bits_exact(frac):
    """Bits of the float32 nearest to the rational frac (ties to even), for finite in-range values."""
    x = float(frac)
    if x == 0.0:
        return 0x80000000 if frac < 0 else 0
    b = struct.unpack("<I", struct.pack("<f", x))[0]  # round(double(frac)) -> float32; may be one ulp off
    best = None
    for cand in (b - 1, b, b + 1):
        if cand < 0 or (cand & 0x7F800000) == 0x7F800000:
            continue
        v = Fraction(struct.unpack("<f", struct.pack("<I", cand))[0])
        d = abs(v - frac)
        if best is None or d < best[0] or (d == best[0] and cand % 2 == 0 and best[1] % 2 == 1):
            best = (d, cand)
    return best[1]


def f32_bits_text(tok):
    """float32 bits of a JSON number token (str for floats, int for integers), rounded once from the decimal."""
    if isinstance(tok, int):
        return f32_bits_exact(Fraction(tok))
    x = float(tok)
    try:
        b = struct.unpack("<I", struct.pack("<f", x))[0]
    except OverflowError:
        sys.exit(f"value {tok} is out of float32 range")
    f = struct.unpack("<f", struct.pack("<I", b))[0]
    # Double rounding (decimal -> double -> float32) can only go wrong when the double sits at (or within a double
    # ulp or two of) a midpoint between f and a neighbouring float32; only then take the exact rational route.
    mag = b & 0x7FFFFFFF
    for nb in (mag - 1, mag + 1):
        if nb < 0 or (nb & 0x7F800000) == 0x7F800000:
            continue
        g = math.copysign(struct.unpack("<f", struct.pack("<I", nb))[0], f)
        if abs(x - (f + g) / 2) <= 2 * math.ulp(x):
            return f32_bits_exact(Fraction(tok))
    return b


def meter_names(proto):
    names = {}
    for m in re.finditer(r"\b(METER_STATUS_[A-Z_]+)\s*=\s*(\d+)\s*;", open(proto).read()):
        names[m.group(1)] = int(m.group(2))
    if not names:
        sys.exit(f"no MeterStatus values found in {proto}")
    return names


# gen's own NDJSON layout (field order fixed, shortest round-trip numbers): parsed with one regular expression per
# chunk, which is ~5x faster than json.loads; a chunk with any other line falls back to json.loads line by line.
NUM = r"(-?[0-9][0-9.eE+-]*)"
GEN_LINE = re.compile(r'^\{"vehicle_id":(\d+),"sampled_at_ms":(-?\d+),"seq":(\d+),"latitude":' + NUM +
                      r',"longitude":' + NUM + r',"speed_kmh":' + NUM + r',"heading_deg":' + NUM +
                      r',"accuracy_m":' + NUM + r',"meter_status":"(\w+)"\}\n', re.M)


def canon(ndjson, proto, out):
    names = meter_names(proto)
    f32cache = {}

    def f32(tok):
        b = f32cache.get(tok)
        if b is None:
            b = f32cache[tok] = f32_bits_text(int(tok) if re.fullmatch(r"-?\d+", tok) else tok)
        return b

    def f64s(toks):  # IEEE bits of many decimal doubles at once (float() is correctly rounded)
        a = array("d", map(float, toks))
        q = array("Q")
        q.frombytes(a.tobytes())
        return q

    n = 0
    with open(ndjson) as f, open(out, "w") as o:
        while True:
            lines = f.readlines(16 << 20)
            if not lines:
                break
            chunk = "".join(lines) if lines[-1].endswith("\n") else "".join(lines) + "\n"
            rows = GEN_LINE.findall(chunk)
            if len(rows) != chunk.count("\n"):
                rows = []
                for line in lines:
                    if not line.strip():
                        continue
                    r = json.loads(line, parse_float=str)
                    ms = r.get("meter_status", 0)
                    rows.append((str(int(r["vehicle_id"])), str(int(r.get("sampled_at_ms", 0))),
                                 str(int(r.get("seq", 0))), str(r.get("latitude", 0)), str(r.get("longitude", 0)),
                                 str(r.get("speed_kmh", 0)), str(r.get("heading_deg", 0)),
                                 str(r.get("accuracy_m", 0)), ms if isinstance(ms, str) else str(ms)))
            lat = f64s(r[3] for r in rows)
            lon = f64s(r[4] for r in rows)
            o.write("".join("%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n" % (
                r[0], r[1], r[2], lat[i], lon[i], f32(r[5]), f32(r[6]), f32(r[7]),
                names[r[8]] if r[8] in names else int(r[8])) for i, r in enumerate(rows)))
            n += len(rows)
    print(n)


def sqlite_rows(db, table, out):
    def f32_of_double(x):
        b = struct.unpack("<I", struct.pack("<f", x))[0]
        if struct.unpack("<f", struct.pack("<I", b))[0] != x:
            return "NOT-A-FLOAT32(%r)" % x
        return str(b)

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    n = 0
    with open(out, "w") as o:
        for (vid, ts, seq, lat, lon, spd, hdg, acc, ms) in con.execute(
                f"SELECT vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, heading_deg, accuracy_m, "
                f"meter_status FROM {table}"):
            o.write("%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\n" % (
                vid & 0xFFFFFFFFFFFFFFFF, ts, seq & 0xFFFFFFFFFFFFFFFF, f64_bits(lat), f64_bits(lon),
                f32_of_double(spd), f32_of_double(hdg), f32_of_double(acc), ms))
            n += 1
    print(n)


def key(line):
    return line.split("\t", 3)[:3]


def diff(expected, actual):
    exp = open(expected).read().splitlines()
    act = open(actual).read().splitlines()
    if exp == act:
        print(f"equal: {len(exp)} records, every field bit for bit")
        return 0
    ek = {}
    for line in exp:
        ek.setdefault(tuple(key(line)), line)
    ak = {}
    dups = []
    for line in act:
        k = tuple(key(line))
        if k in ak:
            dups.append(line)
        else:
            ak[k] = line
    missing = [ek[k] for k in ek if k not in ak]
    extra = [ak[k] for k in ak if k not in ek]
    differ = [(ek[k], ak[k]) for k in ek if k in ak and ek[k] != ak[k]]
    print(f"MISMATCH: expected {len(exp)} records, warehouse has {len(act)}: {len(missing)} missing, "
          f"{len(extra)} unexpected, {len(dups)} duplicated, {len(differ)} with different fields")
    print("columns: vehicle_id sampled_at_ms seq lat_bits lon_bits speed_bits heading_bits accuracy_bits meter")
    for line in missing[:5]:
        print("  missing:    " + line)
    for line in extra[:5]:
        print("  unexpected: " + line)
    for line in dups[:5]:
        print("  duplicate:  " + line)
    for e, a in differ[:5]:
        print("  expected:   " + e)
        print("  got:        " + a)
    return 1


def headers_sum(path):
    total = msgs = 0
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        # the full headers (tp-records=N) or the compact one (tp=VERSION,N), docs/FORMAT.md section 5
        m = re.search(r"(?:^|,)tp-records=(\d+)", line) or re.fullmatch(r"tp=\d+,(\d+)", line)
        if not m:
            sys.exit(f"a message without a tp-records or tp header: {line}")
        total += int(m.group(1))
        msgs += 1
    print(total, msgs)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "canon" and len(args) == 3:
        canon(*args)
    elif cmd == "sqlite" and len(args) == 3:
        sqlite_rows(*args)
    elif cmd == "diff" and len(args) == 2:
        sys.exit(diff(*args))
    elif cmd == "headers-sum" and len(args) == 1:
        headers_sum(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
