#!/usr/bin/python3
"""make bench: runs every benchmark program build/tests/bench_* (built from
tests/bench/bench_*.c) and every tests/bench/bench_*.py, in name order. Each
prints its own figures, including the peer it is compared against in the
same run, as ratios. Usage: tests/bench/run.py [NAME_SUBSTRING...]"""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("KC_BUILD", os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))


def main():
    wanted = sys.argv[1:]
    programs = sorted(glob.glob(os.path.join(BUILD, "tests", "bench_*")))
    programs += sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    programs.sort(key=os.path.basename)
    if wanted:
        programs = [p for p in programs if any(w in os.path.basename(p) for w in wanted)]
    failed = 0
    for program in programs:
        args = ["/usr/bin/python3", program] if program.endswith(".py") else [program]
        print(f"== {os.path.basename(program)}", flush=True)
        env = dict(os.environ, KC_BUILD=BUILD)
        if subprocess.run(args, env=env).returncode != 0:
            print(f"bench: {os.path.basename(program)} failed")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
