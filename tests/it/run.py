#!/usr/bin/python3
"""Runs every integration/interop test script tests/it/test_*.py, each in its
own process (real binaries, temp dirs, 127.0.0.1/ipc only), and reports.

Usage: tests/it/run.py [-j JOBS] [NAME_SUBSTRING...]   (KC_BUILD = build directory)

With -j (or KC_JOBS) up to JOBS scripts run at once, in name order; each
script's verdict and, if it failed, its output are printed together when it
ends. (Longest first was slower on 2 cores: test_recovery and test_sync then
run side by side and each takes twice as long.)
"""
import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#   Suites that load the machine for a while (test_deb compiles the whole
#   tree to package it): they run after the others, alone, so the timing of
#   the others (heads every 200 ms, 1 s staleness) is not theirs to bear.
ALONE = {"test_deb"}


def run_script(script):
    started = time.monotonic()
    result = subprocess.run(["/usr/bin/python3", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return result, time.monotonic() - started


def report(name, result, took):
    verdict = "PASS" if result.returncode == 0 else "FAIL"
    lines = [f"  {verdict} {name} ({took:.1f}s)"]
    if result.returncode != 0 or os.environ.get("KC_VERBOSE"):
        lines.append("    " + result.stdout.replace("\n", "\n    ").rstrip())
    print("\n".join(lines), flush=True)


def main():
    parser = argparse.ArgumentParser(description="keyclone integration tests")
    parser.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("KC_JOBS", "1")),
                        help="scripts run at once (default: KC_JOBS or 1)")
    parser.add_argument("names", nargs="*", help="run only scripts whose name contains one of these")
    args = parser.parse_args()
    scripts = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if args.names:
        scripts = [s for s in scripts if any(w in os.path.basename(s) for w in args.names)]
    if not scripts:
        print("run.py: no tests matched", file=sys.stderr)
        return 2
    jobs = max(1, min(args.jobs, len(scripts)))
    started = time.monotonic()
    failed = []
    together = [s for s in scripts if os.path.basename(s)[:-3] not in ALONE]
    alone = [s for s in scripts if os.path.basename(s)[:-3] in ALONE]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_script, s): os.path.basename(s)[:-3] for s in together}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            result, took = future.result()
            report(name, result, took)
            if result.returncode != 0:
                failed.append(name)
    for script in alone:
        result, took = run_script(script)
        report(os.path.basename(script)[:-3], result, took)
        if result.returncode != 0:
            failed.append(os.path.basename(script)[:-3])
    took = f"{time.monotonic() - started:.0f}s, {jobs} at a time" if jobs > 1 else \
           f"{time.monotonic() - started:.0f}s"
    if failed:
        print(f"integration: {len(failed)} of {len(scripts)} failed ({took}): {', '.join(sorted(failed))}")
        return 1
    print(f"integration: {len(scripts)} passed ({took})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
