#!/usr/bin/python3
"""docs/security.md stays true: a row for each threat T1-T20, every test it
names exists (tests/it/FILE.py::TEST, or a rogue scenario of test_rogue.py,
or a module selftest), and the tests it marks expected-to-fail carry the
kc.expected_failure mark (and the others do not; since issue 15 none is)."""
import os
import re

import kc

DOC = os.path.join(kc.ROOT, "docs", "security.md")
TESTS = os.path.join(kc.ROOT, "tests", "it")


def test_every_threat_has_a_row():
    text = open(DOC).read()
    rows = re.findall(r"^\| (T\d+) \|", text, re.M)
    kc.check(rows == [f"T{n}" for n in range(1, 21)], f"rows {rows}")


def defined(file, name):
    source = open(os.path.join(TESTS, file)).read()
    if re.search(rf"^def {name}\(", source, re.M):
        return True
    scenario = name[len("test_"):].replace("_", "-")
    return file == "test_rogue.py" and f'("{scenario}", ' in source


def test_every_named_test_exists():
    text = open(DOC).read()
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    kc.check(len(named) > 30, f"only {len(named)} tests named")
    missing = [f"{f}::{n}" for f, n in named if not defined(f, n)]
    kc.check(not missing, f"docs/security.md names tests that do not exist: {missing}")
    table = open(os.path.join(kc.ROOT, "tests", "unit", "selftest.c")).read()
    for module in re.findall(r"`selftest ([a-z_]+)`", text):
        kc.check(f'"{module}"' in table, f"no selftest '{module}'")


def test_expected_failures_are_marked():
    text = open(DOC).read()
    marked = set(re.findall(r"`(test_\w+\.py)::(test_\w+)` \(expected-to-fail\)", text))
    for file in sorted(os.listdir(TESTS)):
        if not file.startswith("test_") or not file.endswith(".py"):
            continue
        source = open(os.path.join(TESTS, file)).read()
        for name in re.findall(r"@kc\.expected_failure\([^)]*\)\ndef (test_\w+)\(", source):
            kc.check((file, name) in marked, f"{file}::{name} is marked expected-to-fail but the "
                     "table does not say so")
            marked.discard((file, name))
    kc.check(not marked, f"the table marks {marked} expected-to-fail but the tests are not")


if __name__ == "__main__":
    kc.main([test_every_threat_has_a_row, test_every_named_test_exists, test_expected_failures_are_marked])
