#!/usr/bin/python3
"""soak - memory over a long run: a server and KC_SOAK_AGENTS agents (5),
a registration every 200 ms and a revocation every second, for
KC_SOAK_SECONDS (3600). Every minute it prints the server's and each
agent's RSS, and at the end the growth over the second half of the run,
which should be flat: the agent's memory is bounded by sqlite's page cache
(2 MiB a connection, sqlite's default), the verified batches of one sync,
and tables sized by the directory; the server's by its page cache and the
64 MiB snapshot send budget.

    KC_BUILD=$PWD/build /usr/bin/python3 tests/bench/soak.py

Not part of make bench (it takes an hour); its figures go in the notes of
the issue that asked for them.
"""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq                                  # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402

SECONDS = int(os.environ.get("KC_SOAK_SECONDS", "3600"))
AGENTS = int(os.environ.get("KC_SOAK_AGENTS", "5"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
    return 0


def main():
    cluster = Cluster()
    cluster.start_server()
    agents = [cluster.add_agent() for _ in range(AGENTS)]
    cluster.wait_converged()
    stop = threading.Event()
    counts = {"registered": 0, "revoked": 0, "failed": 0}
    keys = []

    def churn():
        n = 0
        while not stop.is_set():
            n += 1
            key = zmq.curve_keypair()[0].decode()
            try:
                cluster.cli("register", f"soak-{n}", "--key", key, "--tag", "role=soak")
                keys.append(key)
                counts["registered"] += 1
                if n % 5 == 0 and keys:
                    cluster.cli("revoke", keys.pop(0))
                    counts["revoked"] += 1
            except AssertionError:
                counts["failed"] += 1
            stop.wait(0.2)

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    samples = []
    started = time.monotonic()
    print(f"soak: {AGENTS} agents, a registration every 200 ms and a revocation every second, "
          f"{SECONDS} s; RSS in MiB", flush=True)
    print(f"{'minute':>6} {'server':>8} " + " ".join(f"{a.name:>9}" for a in agents), flush=True)
    while time.monotonic() - started < SECONDS:
        time.sleep(min(60, SECONDS - (time.monotonic() - started)))
        row = [rss_kib(cluster.server.pid)] + [rss_kib(a.proc.pid) for a in agents]
        samples.append((time.monotonic() - started, row))
        print(f"{len(samples):>6} " + " ".join(f"{v / 1024:>9.1f}" for v in row), flush=True)
    stop.set()
    worker.join()
    status = cluster.wait_converged(timeout=120)
    half = [s for s in samples if s[0] >= SECONDS / 2]
    if len(half) >= 2:
        span = (half[-1][0] - half[0][0]) / 60
        growth = [(half[-1][1][i] - half[0][1][i]) / span for i in range(len(half[0][1]))]
        print(f"growth over the second half, KiB per minute: server {growth[0]:+.0f}, agents "
              + ", ".join(f"{g:+.0f}" for g in growth[1:]), flush=True)
    print(f"{counts['registered']} registrations, {counts['revoked']} revocations, {counts['failed']} failed; "
          f"every agent at seq {status['seq']}", flush=True)
    for agent in agents:
        agent.stop()
    cluster.stop_server()


if __name__ == "__main__":
    main()
