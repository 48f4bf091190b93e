#!/usr/bin/python3
"""make bench: runs every benchmark program build/tests/bench_* (built from
tests/bench/bench_*.c) and every tests/bench/bench_*.py, in name order. Each
prints its own figures, including the peer it is compared against in the
same run, as ratios. Usage: tests/bench/run.py [NAME_SUBSTRING...]"""
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("KC_BUILD", os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))


TIME_WAIT_MAX = 2000          # a benchmark starts once fewer sockets than this linger


def time_wait():
    """TCP sockets in TIME_WAIT now (state 06 in /proc/net/tcp and tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                count += sum(1 for line in f.readlines()[1:] if line.split()[3] == "06")
        except OSError:
            pass
    return count


def settle():
    """Waits (up to 90 s) for the sockets the previous benchmark left in
    TIME_WAIT to go, so that a benchmark making many connections does not
    run out of local ports because of the one before it."""
    started = time.monotonic()
    while time_wait() >= TIME_WAIT_MAX and time.monotonic() - started < 90:
        time.sleep(1)
    lingering = time_wait()
    if time.monotonic() - started > 1:
        print(f"   (waited {time.monotonic() - started:.0f} s for sockets in TIME_WAIT to go: {lingering} left)",
              flush=True)


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
        settle()
        print(f"== {os.path.basename(program)}", flush=True)
        env = dict(os.environ, KC_BUILD=BUILD)
        if subprocess.run(args, env=env).returncode != 0:
            print(f"bench: {os.path.basename(program)} failed")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
