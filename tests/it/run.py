#!/usr/bin/python3
"""Runs every integration/interop test script tests/it/test_*.py, each in its
own process (real binaries, temp dirs, 127.0.0.1/ipc only), and reports.

Usage: tests/it/run.py [NAME_SUBSTRING...]     (KC_BUILD = build directory)
"""
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    wanted = sys.argv[1:]
    scripts = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if wanted:
        scripts = [s for s in scripts if any(w in os.path.basename(s) for w in wanted)]
    if not scripts:
        print("run.py: no tests matched", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        name = os.path.basename(script)[:-3]
        started = time.monotonic()
        result = subprocess.run(["/usr/bin/python3", script], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        took = time.monotonic() - started
        verdict = "PASS" if result.returncode == 0 else "FAIL"
        print(f"  {verdict} {name} ({took:.1f}s)", flush=True)
        if result.returncode != 0 or os.environ.get("KC_VERBOSE"):
            print("    " + result.stdout.replace("\n", "\n    ").rstrip())
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"integration: {len(failed)} of {len(scripts)} failed: {', '.join(failed)}")
        return 1
    print(f"integration: {len(scripts)} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
