#!/usr/bin/env python3
"""Checks the failure-modes tables of the docs: every row names at least one test, and every test it names exists
(a file under tests/, a test file name, a test registered from such a file, or a fuzz target). Usage:
failure_modes.py SOURCE_ROOT. Exit 1 with the offending rows listed."""
import os
import re
import sys

root = sys.argv[1]
test_files = set()
for d, _, files in os.walk(os.path.join(root, "tests")):
    for f in files:
        test_files.add(f)
        test_files.add(os.path.splitext(f)[0])
fuzz = {f[len("fuzz_"):-2] for f in os.listdir(os.path.join(root, "tests", "fuzz")) if f.startswith("fuzz_")}

TOKEN = re.compile(r"[A-Za-z0-9_./*-]+")


def known(tok):
    tok = tok.strip("`.,;()")
    if not tok:
        return False
    if tok.startswith("tests/"):
        if "*" in tok:
            import glob
            return bool(glob.glob(os.path.join(root, tok)))
        return os.path.exists(os.path.join(root, tok))
    name = tok.replace("-", "_")
    for prefix in ("integration_e2e_", "integration_", ""):
        if name.startswith(prefix):
            base = name[len(prefix):]
            if {base, "test_" + base, "e2e_" + base} & test_files:
                return True
    if tok.startswith("fuzz-replay-") and tok[len("fuzz-replay-"):] in fuzz:
        return True
    if tok.startswith("fuzz_") and tok[len("fuzz_"):] in fuzz:
        return True
    return False


bad = []
rows = 0
for doc in sorted(os.listdir(os.path.join(root, "docs"))):
    if not doc.endswith(".md"):
        continue
    lines = open(os.path.join(root, "docs", doc), encoding="utf-8").read().splitlines()
    in_table = False
    for no, line in enumerate(lines, 1):
        if line.startswith("## "):
            in_table = line.strip().lower() == "## failure modes"
            continue
        if not in_table or not line.startswith("|") or line.startswith("|---") or line.startswith("| input"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows += 1
        test_cell = cells[-1]
        # The leading word of each comma-separated item names the test (what follows in parentheses says which part).
        items = [re.sub(r"\(.*?\)", "", it) for it in re.split(r",(?![^(]*\))", test_cell)]
        heads = [TOKEN.findall(it)[0] if TOKEN.findall(it) else "" for it in items]
        if not any(known(h) for h in heads):
            bad.append(f"docs/{doc}:{no}: no known test in '{test_cell}'")
            continue
        for h in heads:
            if h.startswith("tests/") and not known(h):
                bad.append(f"docs/{doc}:{no}: '{h}' does not exist")
for b in bad:
    print(b, file=sys.stderr)
print(f"{rows} failure-mode rows checked, {len(bad)} without an existing test")
sys.exit(1 if bad or rows == 0 else 0)
