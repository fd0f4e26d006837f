#!/usr/bin/env python3
"""A strict reader of the Prometheus text exposition format (0.0.4) for the operations tests.

Usage:
  prom_text.py scrape URL OUT.json        GET URL, check it strictly, save its samples as JSON (exit 1 on a violation)
  prom_text.py value SNAP NAME [K=V ...]  print the sum of the matching samples (exit 3 when none matches)
  prom_text.py series SNAP NAME [K=V ...] print how many samples match
  prom_text.py monotonic SNAP SNAP ...    check that no counter (nor histogram count, sum or bucket) goes down or
                                          vanishes from one snapshot to the next
  prom_text.py selftest                   show that every rule below rejects an exposition that breaks it

Rules: every sample belongs to a family declared by a `# TYPE` line that comes before it (counter, gauge,
histogram, summary, untyped; `name_bucket`/`_sum`/`_count` for histograms); a family's lines form one group; TYPE
and HELP at most once per family; metric and label names valid, label values quoted with only \\\\ \\" \\n escapes,
no label twice, no sample twice; values are floats (NaN, +Inf, -Inf); counters are >= 0; each histogram series
has increasing `le` bounds ending in +Inf, cumulative bucket counts, `_count` == the +Inf bucket, and a `_sum`;
the text ends with a newline.
"""
import json
import math
import re
import sys
import urllib.request

METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(Exception):
    pass


def parse_value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ExpositionError(f"{where}: value '{s}' is not a float")
    return float(s)


def parse_labels(s, i, where):
    """s[i] == '{'. Returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, i)
        if not m:
            raise ExpositionError(f"{where}: bad label name at column {i + 1}")
        name = m.group(0)
        if name.startswith("__"):
            raise ExpositionError(f"{where}: label name '{name}' is reserved")
        i = m.end()
        if s[i:i + 2] != '="':
            raise ExpositionError(f"{where}: label '{name}' is not followed by =\"")
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise ExpositionError(f"{where}: unterminated value of label '{name}'")
            c = s[i]
            if c == "\\":
                if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                    raise ExpositionError(f"{where}: bad escape in the value of label '{name}'")
                val.append("\n" if s[i + 1] == "n" else s[i + 1])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ExpositionError(f"{where}: label '{name}' given twice")
        labels[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] == "}":
            continue
        else:
            raise ExpositionError(f"{where}: expected ',' or '}}' after label '{name}'")


def family_of(name, declared):
    """The declared family a sample name belongs to, or None."""
    if name in declared and declared[name] in ("counter", "gauge", "untyped", "summary"):
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            t = declared.get(base)
            if t == "histogram" or (t == "summary" and suffix != "_bucket"):
                return base
    return None


def parse(text):
    """Checks text strictly. Returns (types {family: type}, samples [(name, labels dict, value)])."""
    if not text.endswith("\n"):
        raise ExpositionError("the exposition does not end with a newline")
    declared, helped, done = {}, set(), set()
    current = None
    samples, seen = [], set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("TYPE", "HELP"):
                if len(parts) < 3 or not METRIC_RE.match(parts[2]):
                    raise ExpositionError(f"{where}: # {parts[1]} without a valid metric name: {line!r}")
                fam = parts[2]
                if fam in done or (current is not None and fam != current and fam in declared):
                    raise ExpositionError(f"{where}: family '{fam}' continues after another family started")
                if parts[1] == "TYPE":
                    if fam in declared:
                        raise ExpositionError(f"{where}: second # TYPE for '{fam}'")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ExpositionError(f"{where}: bad type in {line!r}")
                    declared[fam] = parts[3]
                else:
                    if fam in helped:
                        raise ExpositionError(f"{where}: second # HELP for '{fam}'")
                    helped.add(fam)
                if current is not None and current != fam:
                    done.add(current)
                current = fam
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ExpositionError(f"{where}: bad metric name: {line!r}")
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i, where)
        rest = line[i:]
        if not rest.startswith(" "):
            raise ExpositionError(f"{where}: no space between the sample name and its value: {line!r}")
        fields = rest.split()
        if len(fields) not in (1, 2):
            raise ExpositionError(f"{where}: expected a value and an optional timestamp: {line!r}")
        value = parse_value(fields[0], where)
        if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
            raise ExpositionError(f"{where}: bad timestamp '{fields[1]}'")
        fam = family_of(name, declared)
        if fam is None:
            raise ExpositionError(f"{where}: sample '{name}' belongs to no family declared with # TYPE")
        if fam != current:
            if fam in done:
                raise ExpositionError(f"{where}: family '{fam}' continues after another family started")
            if current is not None:
                done.add(current)
            current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ExpositionError(f"{where}: sample {name}{labels} given twice")
        seen.add(key)
        t = declared[fam]
        if t == "counter" and not value >= 0:
            raise ExpositionError(f"{where}: counter {name} has value {fields[0]}")
        if t == "histogram" and name == fam + "_bucket" and "le" not in labels:
            raise ExpositionError(f"{where}: histogram bucket without an le label")
        if t == "histogram" and name != fam + "_bucket" and "le" in labels:
            raise ExpositionError(f"{where}: le label on {name}")
        samples.append((name, labels, value))
    check_histograms(declared, samples)
    return declared, samples


def check_histograms(declared, samples):
    groups = {}
    for name, labels, value in samples:
        for fam, t in declared.items():
            if t != "histogram" or not name.startswith(fam + "_"):
                continue
            suffix = name[len(fam):]
            if suffix not in ("_bucket", "_sum", "_count"):
                continue
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            g = groups.setdefault((fam, rest), {"buckets": [], "sum": None, "count": None})
            if suffix == "_bucket":
                g["buckets"].append((parse_value(labels["le"], f"{fam} le"), value))
            elif suffix == "_sum":
                g["sum"] = value
            else:
                g["count"] = value
    for (fam, rest), g in groups.items():
        what = f"histogram {fam}{dict(rest)}"
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ExpositionError(f"{what}: the last bucket is not le=\"+Inf\"")
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le1 > le0:
                raise ExpositionError(f"{what}: bucket bounds {le0} then {le1} do not increase")
            if c1 < c0:
                raise ExpositionError(f"{what}: bucket le={le1} holds {c1} < {c0} of le={le0}: not cumulative")
        if g["count"] is None or g["sum"] is None:
            raise ExpositionError(f"{what}: _count or _sum missing")
        if g["count"] != b[-1][1]:
            raise ExpositionError(f"{what}: _count {g['count']} != +Inf bucket {b[-1][1]}")


def series_key(name, labels):
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def scrape(url, out):
    with urllib.request.urlopen(url, timeout=5) as r:
        ctype = r.headers.get("Content-Type", "")
        body = r.read().decode("utf-8")
        status = r.status
    if status != 200:
        raise ExpositionError(f"{url} answered {status}")
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        raise ExpositionError(f"{url}: Content-Type '{ctype}' is not text/plain; version=0.0.4")
    declared, samples = parse(body)
    snap = {"types": declared, "samples": [[n, l, v if math.isfinite(v) else repr(v)] for n, l, v in samples]}
    with open(out, "w") as f:
        json.dump(snap, f)


def load(path):
    with open(path) as f:
        snap = json.load(f)
    return snap["types"], [(n, l, float(v)) for n, l, v in snap["samples"]]


def matching(path, name, selectors):
    want = dict(s.split("=", 1) for s in selectors)
    _, samples = load(path)
    return [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items())]


def monotonic(paths):
    prev = None
    for p in paths:
        types, samples = load(p)
        cur = {}
        for n, l, v in samples:
            fam = family_of(n, types)
            t = types.get(fam)
            if t == "counter" or (t == "histogram" and n != fam + "_sum"):
                cur[series_key(n, l)] = v
        if prev is not None:
            for k, v in prev[1].items():
                if k not in cur:
                    raise ExpositionError(f"{k} vanished between {prev[0]} and {p}")
                if cur[k] < v:
                    raise ExpositionError(f"{k} went down from {v} in {prev[0]} to {cur[k]} in {p}")
        prev = (p, cur)


GOOD = """# HELP a_total Things.
# TYPE a_total counter
a_total{x="1"} 3
a_total{x="2",y="q\\"\\\\\\n"} 4
# TYPE g gauge
g -1.5e-3
# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="1"} 3
h_bucket{le="+Inf"} 4
h_sum 7.25
h_count 4
"""

BAD = {
    "no TYPE": "x 1\n",
    "HELP after another family": "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\n# HELP x late\n",
    "no newline at end": "# TYPE x gauge\nx 1",
    "bad metric name": "# TYPE x gauge\n1x 1\n",
    "bad label name": '# TYPE x gauge\nx{1a="b"} 1\n',
    "reserved label": '# TYPE x gauge\nx{__a="b"} 1\n',
    "unquoted label": "# TYPE x gauge\nx{a=b} 1\n",
    "bad escape": '# TYPE x gauge\nx{a="\\t"} 1\n',
    "unterminated value": '# TYPE x gauge\nx{a="b} 1\n',
    "label twice": '# TYPE x gauge\nx{a="1",a="2"} 1\n',
    "sample twice": "# TYPE x gauge\nx 1\nx 2\n",
    "bad value": "# TYPE x gauge\nx one\n",
    "bad type": "# TYPE x meter\nx 1\n",
    "second TYPE": "# TYPE x gauge\n# TYPE x gauge\nx 1\n",
    "negative counter": "# TYPE x_total counter\nx_total -1\n",
    "split family": "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"1\"} 1\n",
    "bucket without le": "# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n",
    "not cumulative": '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    "no +Inf": '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    "count != +Inf": '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
    "bounds not increasing": '# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\n'
                             'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    "no _sum": '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
    "gauge suffix": "# TYPE x gauge\nx_count 1\n",
}


def selftest():
    declared, samples = parse(GOOD)
    assert declared == {"a_total": "counter", "g": "gauge", "h": "histogram"}, declared
    assert samples[1] == ("a_total", {"x": "2", "y": 'q"\\\n'}, 4.0), samples[1]
    assert len(samples) == 8, samples
    failed = 0
    for what, text in BAD.items():
        try:
            parse(text)
        except ExpositionError:
            continue
        print(f"FAIL: an exposition with '{what}' was accepted", file=sys.stderr)
        failed = 1
    print(f"{'FAIL' if failed else 'ok'}: {len(BAD)} broken expositions checked", file=sys.stderr)
    return failed


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "scrape":
            scrape(argv[2], argv[3])
        elif len(argv) >= 4 and argv[1] in ("value", "series"):
            vals = matching(argv[2], argv[3], argv[4:])
            if argv[1] == "series":
                print(len(vals))
            elif not vals:
                return 3
            else:
                s = sum(vals)
                print(int(s) if s == int(s) else s)
        elif len(argv) >= 3 and argv[1] == "monotonic":
            monotonic(argv[2:])
        elif len(argv) == 2 and argv[1] == "selftest":
            return selftest()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ExpositionError as e:
        print(f"prom_text: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
