#!/usr/bin/env python3
"""EV telemetry test data for the schema pipeline tests, encoded by hand (no protobuf library needed).

  ev_gen.py gen VEHICLES PER_VEHICLE OUT.bin OUT.expect [--added]
      writes varint-delimited fleet.ev.v1.EvTelemetry messages (vehicles interleaved, so packing must group them)
      and the expected values, one JSON object per line in .proto field names (the truth the checks compare with).
      --added also writes field 17 (odometer_wh of tests/schema/variants/ev_added.proto), unknown to ev_telemetry.
  ev_gen.py check-json OUT.expect ACTUAL.ndjson
      compares `telepack inspect --schema ... --proto-names` output with the expectation: every record once, every
      field equal, each vehicle's records in order.
  ev_gen.py check-sqlite OUT.expect DB TABLE
      compares the rows of TABLE with the expectation: every record exactly once, every column equal.
  ev_gen.py check-clickhouse OUT.expect URL DB TABLE
      the same for a ClickHouse table (HTTP interface at URL): the rows of TABLE FINAL, and the table without FINAL
      holding no copy either; floats compared by their bits, bytes by their hex.
"""
import base64
import json
import math
import sqlite3
import struct
import sys


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def tag(num, wt):
    return varint(num << 3 | wt)


def ld(num, payload):
    return tag(num, 2) + varint(len(payload)) + payload


def record(v, i, added):
    """The values of record i of vehicle v (proto field names), and its encoding."""
    vin = "WVWZZZ1JZ%08d" % ((5000 if added else 3000) + v)
    seconds = 1714564800 + i * 5 + v
    nanos = [0, 250000000, 123456000, 987654321][i % 4]
    soc = 80.0 - i * 0.25
    cells = [3.5 + 0.125 * k for k in range((v + i) % 4)]  # some records have none
    current = None if i % 3 == 0 else -12.5 * (i + 1)
    lat = float("nan") if (v == 1 and i == 2) else 52.5 + v / 1000.0 + i / 7.0e5
    vals = {
        "vin": vin,
        "recorded_at": (seconds, nanos),
        "seq": i + 1 + (1 << 40 if v == 2 else 0),
        "battery": {
            "state_of_charge_pct": soc,
            "pack_voltage_v": 400.5,
            "min_cell_temp_dc": -35 - i,
            "max_cell_temp_dc": 310 + v,
            "cell_voltages_v": cells,
            "current_a": current,
        },
        "drive_state": ["DRIVE_STATE_UNSPECIFIED", "DRIVE_STATE_PARKED", "DRIVE_STATE_DRIVING",
                        "DRIVE_STATE_CHARGING"][(v + i) % 4],
        "odometer_m": 12000000 + 37 * i - (1 << 35 if v == 3 else 0),
        "raw_frame": bytes([(v * 7 + i + k) % 256 for k in range(i % 5)]),
        "can": {"wheel_speed_fl": 100 * i, "brake_flags": 0xF0F0 + i, "torque_nmm": -(i * 100000) - v,
                "hv_interlock": i % 2 == 1},
        "trip_deltas": [k * 1000 - 1500 for k in range(i % 3)],
        "fault_codes": [7, 4000000000][: i % 3],
        "ecu_serial": (1 << 63) + v,
        "ambient_temp_c": -5 + i % 20,
        "altitude_dm": -120 + i,
        "flags": (1 << 64) - 1 - i,
        "tags": ["fleet-a", "zone \u00e9\u6771"][: (v + i) % 3],
        "latitude": lat,
    }
    b = vals["battery"]
    bat = (tag(1, 5) + struct.pack("<f", b["state_of_charge_pct"]) + tag(2, 5) + struct.pack("<f", b["pack_voltage_v"])
           + tag(3, 0) + varint(zigzag(b["min_cell_temp_dc"])) + tag(4, 0) + varint(zigzag(b["max_cell_temp_dc"])))
    if cells:
        bat += ld(5, b"".join(struct.pack("<f", c) for c in cells))
    if current is not None:
        bat += tag(6, 1) + struct.pack("<d", current)
    can = vals["can"]
    canb = b""
    if can["wheel_speed_fl"]:
        canb += tag(1, 0) + varint(can["wheel_speed_fl"])
    canb += tag(2, 5) + struct.pack("<I", can["brake_flags"]) + tag(3, 1) + struct.pack("<q", can["torque_nmm"])
    if can["hv_interlock"]:
        canb += tag(4, 0) + varint(1)
    ts = tag(1, 0) + varint(seconds) + (tag(2, 0) + varint(nanos) if nanos else b"")
    m = ld(1, vin.encode()) + ld(2, ts) + tag(3, 0) + varint(vals["seq"]) + ld(4, bat)
    ds = ["DRIVE_STATE_UNSPECIFIED", "DRIVE_STATE_PARKED", "DRIVE_STATE_DRIVING", "DRIVE_STATE_CHARGING"].index(
        vals["drive_state"])
    if ds:
        m += tag(5, 0) + varint(ds)
    m += tag(6, 0) + varint(vals["odometer_m"])
    if vals["raw_frame"]:
        m += ld(7, vals["raw_frame"])
    m += ld(8, canb)
    if vals["trip_deltas"]:
        m += ld(9, b"".join(varint(zigzag(d)) for d in vals["trip_deltas"]))
    for f in vals["fault_codes"]:
        m += tag(10, 0) + varint(f)
    m += tag(11, 1) + struct.pack("<Q", vals["ecu_serial"])
    m += tag(12, 0) + varint(vals["ambient_temp_c"]) if vals["ambient_temp_c"] else b""
    m += tag(13, 5) + struct.pack("<i", vals["altitude_dm"])
    m += tag(14, 0) + varint(vals["flags"])
    for t in vals["tags"]:
        m += ld(15, t.encode())
    m += tag(16, 1) + struct.pack("<d", lat)
    if added:
        m += tag(17, 5) + struct.pack("<f", 200.0 + i)
    return vals, m


def to_json_values(vals):
    """The expectation as plain JSON: Timestamp as [seconds, nanos], bytes as base64, NaN as "NaN"."""
    out = dict(vals)
    out["raw_frame"] = base64.b64encode(vals["raw_frame"]).decode()
    out["latitude"] = "NaN" if math.isnan(vals["latitude"]) else vals["latitude"]
    out["battery"] = dict(vals["battery"])
    return out


def gen(args):
    vehicles, per, out_bin, out_exp = int(args[0]), int(args[1]), args[2], args[3]
    added = "--added" in args
    with open(out_bin, "wb") as fb, open(out_exp, "w") as fe:
        for i in range(per):
            for v in range(vehicles):
                vals, m = record(v, i, added)
                fb.write(varint(len(m)) + m)
                fe.write(json.dumps(to_json_values(vals)) + "\n")


def rfc3339(seconds, nanos):
    import datetime
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return t + "Z"
    if nanos % 1000000 == 0:
        return t + ".%03dZ" % (nanos // 1000000)
    if nanos % 1000 == 0:
        return t + ".%06dZ" % (nanos // 1000)
    return t + ".%09dZ" % nanos


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_json(e):
    """What protobuf's JSON mapping (proto names) gives for the expectation: zeros and empties left out."""
    b = e["battery"]
    bat = {"state_of_charge_pct": b["state_of_charge_pct"], "pack_voltage_v": b["pack_voltage_v"],
           "min_cell_temp_dc": b["min_cell_temp_dc"], "max_cell_temp_dc": b["max_cell_temp_dc"]}
    if b["cell_voltages_v"]:
        bat["cell_voltages_v"] = b["cell_voltages_v"]
    if b["current_a"] is not None:
        bat["current_a"] = b["current_a"]
    can = {"brake_flags": e["can"]["brake_flags"]}
    if e["can"]["torque_nmm"]:
        can["torque_nmm"] = str(e["can"]["torque_nmm"])
    if e["can"]["wheel_speed_fl"]:
        can["wheel_speed_fl"] = e["can"]["wheel_speed_fl"]
    if e["can"]["hv_interlock"]:
        can["hv_interlock"] = True
    j = {"vin": e["vin"], "recorded_at": rfc3339(*e["recorded_at"]), "seq": str(e["seq"]), "battery": bat,
         "odometer_m": str(e["odometer_m"]), "can": can, "ecu_serial": str(e["ecu_serial"]),
         "altitude_dm": e["altitude_dm"], "flags": str(e["flags"]), "latitude": e["latitude"]}
    if e["drive_state"] != "DRIVE_STATE_UNSPECIFIED":
        j["drive_state"] = e["drive_state"]
    if e["raw_frame"]:
        j["raw_frame"] = e["raw_frame"]
    if e["trip_deltas"]:
        j["trip_deltas"] = [str(d) for d in e["trip_deltas"]]
    if e["fault_codes"]:
        j["fault_codes"] = e["fault_codes"]
    if e["ambient_temp_c"]:
        j["ambient_temp_c"] = e["ambient_temp_c"]
    if e["tags"]:
        j["tags"] = e["tags"]
    return j


def canon(j):
    """Floats rounded through float32 where the field is a float, so 400.5 and 400.5 compare equal either way."""
    j = json.loads(json.dumps(j))
    b = j.get("battery", {})
    for k in ("state_of_charge_pct", "pack_voltage_v"):
        if k in b:
            b[k] = f32(b[k])
    if "current_a" in b:
        b["current_a"] = float(b["current_a"])
    if isinstance(j.get("latitude"), (int, float)):
        j["latitude"] = float(j["latitude"])
    if "cell_voltages_v" in b:
        b["cell_voltages_v"] = [f32(x) for x in b["cell_voltages_v"]]
    return json.dumps(j, sort_keys=True)


def load_expect(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def check_json(args):
    exp = load_expect(args[0])
    with open(args[1]) as f:
        got = [json.loads(line) for line in f]
    fails = []
    if len(got) != len(exp):
        fails.append("%d records, expected %d" % (len(got), len(exp)))
    want = {}
    for e in exp:
        want.setdefault(e["vin"], []).append(canon(expected_json(e)))
    have = {}
    for g in got:
        have.setdefault(g.get("vin"), []).append(canon(g))
    for vin, rows in want.items():
        if have.get(vin) != rows:
            h = have.get(vin, [])
            diff = next((k for k in range(min(len(h), len(rows))) if h[k] != rows[k]), None)
            fails.append("vehicle %s: %d records, expected %d%s" % (
                vin, len(h), len(rows), "" if diff is None else "; record %d is\n  %s\nexpected\n  %s" % (
                    diff, h[diff], rows[diff])))
    for vin in have:
        if vin not in want:
            fails.append("unexpected vehicle %s" % vin)
    if fails:
        print("FAIL: " + "\n".join(fails[:5]))
        return 1
    print("all %d records equal field by field" % len(got))
    return 0


def check_sqlite(args):
    exp = load_expect(args[0])
    db = sqlite3.connect(args[1])
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT * FROM %s" % args[2]).fetchall()
    fails = []
    if len(rows) != len(exp):
        fails.append("%d rows, expected %d" % (len(rows), len(exp)))

    def s64(u):
        return u - (1 << 64) if u >= 1 << 63 else u

    by_key = {}
    for r in rows:
        k = (r["vin"], r["recorded_at"], r["seq"])
        if k in by_key:
            fails.append("row %s twice" % (k,))
        by_key[k] = r
    enum = ["DRIVE_STATE_UNSPECIFIED", "DRIVE_STATE_PARKED", "DRIVE_STATE_DRIVING", "DRIVE_STATE_CHARGING"]
    for e in exp:
        ns = e["recorded_at"][0] * 1000000000 + e["recorded_at"][1]
        k = (e["vin"], ns, s64(e["seq"]))
        r = by_key.get(k)
        if r is None:
            fails.append("record %s missing" % (k,))
            continue
        b = e["battery"]
        want = {
            "battery_state_of_charge_pct": f32(b["state_of_charge_pct"]), "battery_pack_voltage_v": f32(b["pack_voltage_v"]),
            "battery_min_cell_temp_dc": b["min_cell_temp_dc"], "battery_max_cell_temp_dc": b["max_cell_temp_dc"],
            "battery_cell_voltages_v": [f32(c) for c in b["cell_voltages_v"]],
            "battery_current_a": b["current_a"], "drive_state": enum.index(e["drive_state"]),
            "odometer_m": e["odometer_m"], "raw_frame": base64.b64decode(e["raw_frame"]),
            "can_wheel_speed_fl": e["can"]["wheel_speed_fl"], "can_brake_flags": e["can"]["brake_flags"],
            "can_torque_nmm": e["can"]["torque_nmm"], "can_hv_interlock": int(e["can"]["hv_interlock"]),
            "trip_deltas": e["trip_deltas"], "fault_codes": e["fault_codes"], "ecu_serial": s64(e["ecu_serial"]),
            "ambient_temp_c": e["ambient_temp_c"], "altitude_dm": e["altitude_dm"], "flags": s64(e["flags"]),
            "tags": e["tags"], "latitude": None if e["latitude"] == "NaN" else e["latitude"],
        }
        for col, w in want.items():
            g = r[col]
            if isinstance(w, list):
                g = json.loads(g) if g is not None else None
                if g is None and w == []:
                    g = []
            if isinstance(w, float) and isinstance(g, (int, float)):
                ok = float(g) == w
            else:
                ok = g == w
            if not ok:
                fails.append("record %s column %s is %r, expected %r" % (k, col, g, w))
    if fails:
        print("FAIL: " + "\n".join(fails[:8]))
        return 1
    print("all %d rows exactly once, every column equal" % len(rows))
    return 0


def check_clickhouse(args):
    import urllib.request
    exp, url, db, table = load_expect(args[0]), args[1], args[2], args[3]
    floats = {"battery_state_of_charge_pct": 4, "battery_pack_voltage_v": 4, "battery_current_a": 8, "latitude": 8}

    def q(sql):
        with urllib.request.urlopen(urllib.request.Request(url + "/", data=sql.encode())) as r:
            return r.read().decode()

    def bits(h, width):  # hex of reinterpretAsString (trailing zero bytes dropped) -> the value
        if h is None:
            return None
        raw = bytes.fromhex(h.ljust(2 * width, "0"))
        return struct.unpack("<f" if width == 4 else "<d", raw)[0]

    cols = ["vin", "recorded_at", "seq", "battery_min_cell_temp_dc", "battery_max_cell_temp_dc", "drive_state",
            "odometer_m", "can_wheel_speed_fl", "can_brake_flags", "can_torque_nmm", "can_hv_interlock",
            "trip_deltas", "fault_codes", "ecu_serial", "ambient_temp_c", "altitude_dm", "flags", "tags",
            "kafka_partition", "kafka_offset"]
    sel = cols + ["hex(raw_frame) AS raw_frame"]
    sel += ["hex(reinterpretAsString(%s)) AS %s" % (c, c) for c in floats]
    sel += ["arrayMap(x -> hex(reinterpretAsString(x)), battery_cell_voltages_v) AS battery_cell_voltages_v"]
    text = q("SELECT %s FROM %s.%s FINAL FORMAT JSONEachRow" % (", ".join(sel), db, table))
    rows = [json.loads(line) for line in text.splitlines() if line]
    fails = []
    total = int(q("SELECT count() FROM %s.%s" % (db, table)))
    if len(rows) != len(exp):
        fails.append("%d rows (FINAL), expected %d" % (len(rows), len(exp)))
    if total != len(exp):
        fails.append("%d rows without FINAL: a record was loaded more than once (or not at all)" % total)
    by_key = {}
    for r in rows:
        k = (r["vin"], int(r["recorded_at"]), int(r["seq"]))
        if k in by_key:
            fails.append("row %s twice" % (k,))
        by_key[k] = r
    enum = ["DRIVE_STATE_UNSPECIFIED", "DRIVE_STATE_PARKED", "DRIVE_STATE_DRIVING", "DRIVE_STATE_CHARGING"]
    for e in exp:
        ns = e["recorded_at"][0] * 1000000000 + e["recorded_at"][1]
        k = (e["vin"], ns, e["seq"])
        r = by_key.get(k)
        if r is None:
            fails.append("record %s missing" % (k,))
            continue
        b = e["battery"]
        want = {
            "battery_state_of_charge_pct": f32(b["state_of_charge_pct"]), "battery_pack_voltage_v": f32(b["pack_voltage_v"]),
            "battery_min_cell_temp_dc": b["min_cell_temp_dc"], "battery_max_cell_temp_dc": b["max_cell_temp_dc"],
            "battery_cell_voltages_v": [f32(c) for c in b["cell_voltages_v"]],
            "battery_current_a": b["current_a"], "drive_state": enum.index(e["drive_state"]),
            "odometer_m": e["odometer_m"], "raw_frame": base64.b64decode(e["raw_frame"]).hex().upper(),
            "can_wheel_speed_fl": e["can"]["wheel_speed_fl"], "can_brake_flags": e["can"]["brake_flags"],
            "can_torque_nmm": e["can"]["torque_nmm"], "can_hv_interlock": int(e["can"]["hv_interlock"]),
            "trip_deltas": e["trip_deltas"], "fault_codes": e["fault_codes"], "ecu_serial": e["ecu_serial"],
            "ambient_temp_c": e["ambient_temp_c"], "altitude_dm": e["altitude_dm"], "flags": e["flags"],
            "tags": e["tags"], "latitude": e["latitude"],
        }
        for col, w in want.items():
            g = r.get(col)
            if col in floats:
                g = bits(g, floats[col])
            elif col == "battery_cell_voltages_v":
                g = [bits(x, 4) for x in g]
            elif isinstance(w, list):
                g = [int(x) if isinstance(x, str) and col != "tags" else x for x in g]
            elif isinstance(w, int):
                g = int(g)
            if w == "NaN":
                ok = isinstance(g, float) and math.isnan(g)
            else:
                ok = g == w
            if not ok:
                fails.append("record %s column %s is %r, expected %r" % (k, col, g, w))
    if fails:
        print("FAIL: " + "\n".join(fails[:8]))
        return 1
    print("all %d rows exactly once, every column equal" % len(rows))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    sys.exit({"gen": lambda a: gen(a) or 0, "check-json": check_json, "check-sqlite": check_sqlite,
              "check-clickhouse": check_clickhouse}[cmd](sys.argv[2:]))
