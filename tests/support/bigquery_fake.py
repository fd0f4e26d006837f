#!/usr/bin/env python3
"""A local stand-in for the three BigQuery REST calls telepack makes (tables.insert, tables.get,
tabledata.insertAll), for tests/test_wh_bigquery.c. It checks every request against the documented shape and
records what arrived; it is not the real service. Listens on 127.0.0.1 on a port the OS picks and prints
"PORT <n>" on stdout.

Control (the test drives these):
  POST /_fake/config  {"fail_once_every": K, "invalid_ids": [...], "status_once": S, "failing_reason": R}
        K > 0: on a row's first arrival, fail every K-th row of the request (reason R, default backendError)
        always_fail_ids: rows that fail with reason R at every arrival
        invalid_ids: rows that always fail with reason "invalid" and message M (config "invalid_message",
        default "no such field.": a schema problem) (the whole request is then stopped, as BigQuery does with
        skipInvalidRows=false)
  Rows are also refused as BigQuery refuses them, whatever the config: a TIMESTAMP whose year is outside
  0001..9999 is "invalid" in location sampled_at ("Timestamp field value is out of range"), and the request's
  other rows are "stopped".
        S: answer the next insertAll with HTTP S once
  GET  /_fake/log     {"requests": [[insertId, ...] per insertAll], "inserted": {insertId: count},
                        "rows": {insertId: json of the inserted row},
                        "violations": [...], "tables": [...]}
  POST /_fake/quit

A table whose schema is not the built-in one (telepack sink --schema) is checked field by field against the
schema it was created with: modes REQUIRED / NULLABLE / REPEATED, types INTEGER, NUMERIC, FLOAT, BOOLEAN, STRING,
BYTES, TIMESTAMP, each value in the JSON form BigQuery takes for it; its insertIds are recorded, not recomputed.
/_fake/log's "schemas" holds every table's fields.
"""
import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLUMNS = {
    "vehicle_id": "INTEGER", "sampled_at_ms": "INTEGER", "seq": "INTEGER", "sampled_at": "TIMESTAMP",
    "latitude": "FLOAT", "longitude": "FLOAT", "speed_kmh": "FLOAT", "heading_deg": "FLOAT",
    "accuracy_m": "FLOAT", "meter_status": "INTEGER", "kafka_partition": "INTEGER", "kafka_offset": "INTEGER",
}
INT_RE = re.compile(r"^-?[0-9]+$")
# FLOAT64 values JSON has no number for: BigQuery takes them as these strings (Google's JSON mapping of doubles, and
# what BigQuery itself returns). Bare NaN / Infinity tokens are not JSON and BigQuery's parser refuses them.
FLOAT_SPECIAL = ("NaN", "Infinity", "-Infinity")


def refuse_constant(name):
    raise ValueError("%s is not JSON" % name)
TS_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
# What a client may send for a TIMESTAMP whose year BigQuery cannot hold (5 digits, or a sign): a row error.
TS_SHAPE_RE = re.compile(r"^-?[0-9]{1,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")


def row_invalid(row):
    """BigQuery's per-row refusal of a value (reason "invalid"), or None."""
    v = row.get("sampled_at")
    if isinstance(v, str) and TS_SHAPE_RE.match(v) and not TS_RE.match(v):
        return ("sampled_at", "Timestamp field value is out of range: %s" % v)
    if isinstance(v, str) and TS_RE.match(v) and v.startswith("0000"):
        return ("sampled_at", "Timestamp field value is out of range: %s" % v)
    return None


TYPES = ("INTEGER", "NUMERIC", "FLOAT", "BOOLEAN", "STRING", "BYTES", "TIMESTAMP")
MODES = ("REQUIRED", "NULLABLE", "REPEATED")
NUMERIC_RE = re.compile(r"^-?[0-9]{1,29}(\.[0-9]{1,9})?$")
B64_RE = re.compile(r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
TS_ANY_RE = re.compile(r"^(-?[0-9]{1,6})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$")


def value_problem(typ, v):
    if typ == "INTEGER" and not ((isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and INT_RE.match(v))):
        return "is not an INTEGER"
    if typ == "NUMERIC" and not (isinstance(v, str) and NUMERIC_RE.match(v)):
        return "is not a NUMERIC string"
    if typ == "FLOAT" and not ((isinstance(v, (int, float)) and not isinstance(v, bool)) or v in FLOAT_SPECIAL):
        return "is not a FLOAT"
    if typ == "BOOLEAN" and not isinstance(v, bool):
        return "is not a BOOLEAN"
    if typ == "STRING" and not isinstance(v, str):
        return "is not a STRING"
    if typ == "BYTES" and not (isinstance(v, str) and B64_RE.match(v)):
        return "is not base64 BYTES"
    if typ == "TIMESTAMP" and not (isinstance(v, str) and TS_ANY_RE.match(v)):
        return "is not an RFC 3339 UTC time"
    return None


def check_generic_row(row, fields):
    """Problems with one row of a table of another schema, and BigQuery's own refusal of a value (or None)."""
    if not isinstance(row, dict):
        return ["rows[].json is not an object"], None
    problems, invalid = [], None
    byname = {f["name"]: f for f in fields}
    for name, f in byname.items():
        mode = f.get("mode", "NULLABLE")
        if name not in row or row[name] is None:
            if mode == "REQUIRED":
                problems.append("column %s (REQUIRED) missing" % name)
            continue
        vals = row[name]
        if mode == "REPEATED":
            if not isinstance(vals, list):
                problems.append("column %s (REPEATED) is not a list" % name)
                continue
        else:
            vals = [vals]
        for v in vals:
            p = value_problem(f["type"], v)
            if p:
                problems.append("column %s %s: %r" % (name, p, v))
            elif f["type"] == "TIMESTAMP":
                y = int(TS_ANY_RE.match(v).group(1))
                if y < 1 or y > 9999:
                    invalid = (name, "Timestamp field value is out of range: %s" % v)
    for name in row:
        if name not in byname:
            problems.append("unknown column %s" % name)
    return problems, invalid


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.config = {}
        self.requests = []
        self.inserted = {}
        self.rows = {}
        self.seen = set()
        self.violations = []
        self.tables = {}


def check_row_json(row):
    """Problems with one rows[i].json object: every column present with the right JSON type."""
    problems = []
    if not isinstance(row, dict):
        return ["rows[].json is not an object"]
    for name, typ in COLUMNS.items():
        if name not in row:
            problems.append("column %s missing" % name)
            continue
        v = row[name]
        if typ == "INTEGER" and not (isinstance(v, int) or (isinstance(v, str) and INT_RE.match(v))):
            problems.append("column %s is not an integer: %r" % (name, v))
        if typ == "FLOAT" and not (isinstance(v, (int, float)) and not isinstance(v, bool)) and v not in FLOAT_SPECIAL:
            problems.append("column %s is not a number nor one of %s: %r" % (name, "/".join(FLOAT_SPECIAL), v))
        if typ == "TIMESTAMP" and not (isinstance(v, str) and (TS_RE.match(v) or TS_SHAPE_RE.match(v))):
            problems.append("column %s is not an RFC 3339 UTC time: %r" % (name, v))
    for name in row:
        if name not in COLUMNS:
            problems.append("unknown column %s" % name)
    return problems


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl expects

    def log_message(self, fmt, *a):  # quiet
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        self.reply(status, {"error": {"code": status, "message": message, "errors": [{"message": message}]}})

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def violation(self, what):
        st = self.server.state
        with st.lock:
            st.violations.append(what)
        self.error(400, what)

    def authorized(self):
        want = "Bearer " + self.server.state.args.token
        if self.headers.get("Authorization") != want:
            self.error(401, "Request had invalid authentication credentials.")
            return False
        return True

    def base(self):
        a = self.server.state.args
        return "/bigquery/v2/projects/%s/datasets/%s/tables" % (a.project, a.dataset)

    def do_GET(self):
        st = self.server.state
        if self.path == "/_fake/log":
            with st.lock:
                self.reply(200, {"requests": st.requests, "inserted": st.inserted, "violations": st.violations, "rows": st.rows,
                                 "tables": sorted(st.tables),
                                 "schemas": {k: t["schema"]["fields"] for k, t in st.tables.items()}})
            return
        if not self.authorized():
            return
        if self.path.startswith(self.base() + "/"):
            name = self.path[len(self.base()) + 1:]
            with st.lock:
                t = st.tables.get(name)
            if t is None:
                self.error(404, "Not found: Table %s" % name)
            else:
                self.reply(200, t)
            return
        self.error(404, "no such path " + self.path)

    def do_POST(self):
        st = self.server.state
        raw = self.body()
        if self.path == "/_fake/config":
            with st.lock:
                st.config = json.loads(raw)
            self.reply(200, {})
            return
        if self.path == "/_fake/quit":
            self.reply(200, {})
            threading.Thread(target=self.server.shutdown).start()
            return
        if not self.authorized():
            return
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self.violation("Content-Type is not application/json")
        try:
            req = json.loads(raw, parse_constant=refuse_constant)
        except ValueError:
            return self.violation("body is not JSON")
        if self.path == self.base():
            return self.tables_insert(req)
        if self.path.startswith(self.base() + "/") and self.path.endswith("/insertAll"):
            return self.insert_all(self.path[len(self.base()) + 1:-len("/insertAll")], req)
        self.error(404, "no such path " + self.path)

    def tables_insert(self, req):
        st = self.server.state
        ref = req.get("tableReference", {})
        a = st.args
        if ref.get("projectId") != a.project or ref.get("datasetId") != a.dataset or not ref.get("tableId"):
            return self.violation("tableReference does not match the path: %r" % ref)
        fields = req.get("schema", {}).get("fields", [])
        got = {f.get("name"): f.get("type") for f in fields}
        if "vehicle_id" in got and got != COLUMNS:
            return self.violation("schema fields differ: %r" % got)
        for f in fields:
            if got == COLUMNS:
                break
            if f.get("type") not in TYPES or f.get("mode", "NULLABLE") not in MODES or not re.match(
                    r"^[A-Za-z_][A-Za-z0-9_]{0,299}$", f.get("name", "")):
                return self.violation("schema field %r is not a valid BigQuery field" % f)
        tp = req.get("timePartitioning")
        if tp and (tp.get("type") != "DAY" or got.get(tp.get("field")) != "TIMESTAMP"):
            return self.violation("timePartitioning %r is not DAY on a TIMESTAMP column" % tp)
        with st.lock:
            if ref["tableId"] in st.tables:
                return self.error(409, "Already Exists: Table %s" % ref["tableId"])
            st.tables[ref["tableId"]] = {"kind": "bigquery#table", "tableReference": ref, "schema": req["schema"]}
        self.reply(200, st.tables[ref["tableId"]])

    def insert_all(self, table, req):
        st = self.server.state
        with st.lock:
            known = table in st.tables
            fields = st.tables[table]["schema"]["fields"] if known else []
            cfg = dict(st.config)
            status_once = cfg.get("status_once")
            if status_once:
                st.config.pop("status_once")
        if not known:
            return self.error(404, "Not found: Table %s" % table)
        if status_once:
            return self.error(status_once, "injected HTTP %d" % status_once)
        if "kind" in req and req["kind"] != "bigquery#tableDataInsertAllRequest":
            return self.violation("kind is %r" % req["kind"])
        for flag in ("skipInvalidRows", "ignoreUnknownValues"):
            if flag in req and not isinstance(req[flag], bool):
                return self.violation("%s is not a boolean" % flag)
        rows = req.get("rows")
        if not isinstance(rows, list) or not rows or len(rows) > 50000:
            return self.violation("rows is not a list of 1..50000 rows")
        generic = {f.get("name") for f in fields} != set(COLUMNS)
        ids = []
        generic_bad = {}
        for i, r in enumerate(rows):
            if generic:
                iid = r.get("insertId") if isinstance(r, dict) else None
                if not isinstance(iid, str) or not iid or len(iid) > 128:
                    return self.violation("rows[%d].insertId missing or longer than 128" % i)
                problems, inv = check_generic_row(r.get("json"), fields)
                if problems:
                    return self.violation("rows[%d].json: %s" % (i, "; ".join(problems)))
                if inv:
                    generic_bad[i] = inv
                ids.append(iid)
                continue
            iid = r.get("insertId") if isinstance(r, dict) else None
            if not isinstance(iid, str) or not iid or len(iid) > 128:
                return self.violation("rows[%d].insertId missing or longer than 128" % i)
            problems = check_row_json(r.get("json"))
            if problems:
                return self.violation("rows[%d].json: %s" % (i, "; ".join(problems)))
            j = r["json"]
            # insertId must be the record identity (vehicle id unsigned, as the id column's bit pattern).
            want = "%d-%s-%d" % (int(j["vehicle_id"]) % (1 << 64), j["sampled_at_ms"], int(j["seq"]) % (1 << 64))
            if iid != want:
                return self.violation("rows[%d].insertId %s is not the identity %s" % (i, iid, want))
            ids.append(iid)
        k = int(cfg.get("fail_once_every", 0))
        invalid = set(cfg.get("invalid_ids", []))
        always = set(cfg.get("always_fail_ids", []))
        reason = cfg.get("failing_reason", "backendError")
        errors = []
        invalid_message = cfg.get("invalid_message", "no such field.")
        bad = {}
        for i, iid in enumerate(ids):
            if iid in invalid:
                bad[i] = ("", invalid_message)
            elif i in generic_bad:
                bad[i] = generic_bad[i]
            elif not generic:
                r = row_invalid(rows[i]["json"])
                if r:
                    bad[i] = r
        with st.lock:
            st.requests.append(ids)
            if bad and not req.get("skipInvalidRows"):  # nothing of this request is inserted
                for i in range(len(ids)):
                    if i in bad:
                        errors.append({"index": i, "errors": [{"reason": "invalid", "location": bad[i][0],
                                                               "debugInfo": "", "message": bad[i][1]}]})
                    else:
                        errors.append({"index": i, "errors": [{"reason": "stopped", "location": "",
                                                               "debugInfo": "", "message": ""}]})
            else:
                for i, iid in enumerate(ids):
                    first = iid not in st.seen
                    st.seen.add(iid)
                    if (k and first and i % k == k - 1) or iid in always:
                        errors.append({"index": i, "errors": [{"reason": reason, "message": "injected"}]})
                    else:
                        st.inserted[iid] = st.inserted.get(iid, 0) + 1
                        st.rows[iid] = rows[i]["json"]
        out = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            out["insertErrors"] = errors
        self.reply(200, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.state = State(args)
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
