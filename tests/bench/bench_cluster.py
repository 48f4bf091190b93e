#!/usr/bin/python3
"""bench_cluster - the server cluster (issue 14, docs/cluster.md) against the
single server, measured in the same run on this machine:

  latency     register to durable acknowledgement, one batch in flight
              (kc_burst --window 1, one record a batch): p50 and p99 on a
              3-member cluster (submitted to the leader) and on one server;
  throughput  acknowledged single-record batches per second, 64 in flight,
              on both;
  failover    kill -9 of the leader to the next registration acknowledged
              ('keyclone register', started at the kill: it finds the new
              leader itself): p50 and max over 10 trials; goal under 2 s
              with the default election timeout (500 ms).

Every member and the single server run on this one machine, so the cluster's
figures include three members' fsyncs on one disk; on separate hosts they
run in parallel.
"""
import json
import os
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import kc                                   # noqa: E402
from cluster import Cluster, Members        # noqa: E402

LATENCY_BATCHES = int(os.environ.get("KC_BENCH_CLUSTER_LATENCY", "300"))
THROUGHPUT_BATCHES = int(os.environ.get("KC_BENCH_CLUSTER_THROUGHPUT", "3000"))
FAILOVER_TRIALS = int(os.environ.get("KC_BENCH_CLUSTER_TRIALS", "10"))


def burst(root, operator, server, batches, window, prefix):
    args = [os.path.join(kc.TESTS, "kc_burst"), "--root", root, "--operator", operator, "--batches",
            str(batches), "--records", "1", "--window", str(window), "--prefix", prefix, "--timeout", "30000"]
    if server:
        args += ["--server", server]
    out, _ = kc.run(args, timeout=600)
    result = json.loads(out.strip().splitlines()[-1])
    if result["accepted"] != batches:
        raise RuntimeError(f"kc_burst: {result}")
    return result


def main():
    single = Cluster()
    single.start_server()
    s_root = os.path.join(single.dir, "root")
    members = Members()
    leader = members.start_all()
    m_root = os.path.join(members.dir, "root")
    m_submit = members.submit(leader)

    s_lat = burst(s_root, single.operator(), None, LATENCY_BATCHES, 1, "lat")
    m_lat = burst(m_root, members.operator(), m_submit, LATENCY_BATCHES, 1, "lat")
    print(f"latency, register to durable acknowledgement ({LATENCY_BATCHES} batches, one in flight):")
    print(f"  single server   p50 {s_lat['p50_ms']:7.2f} ms   p99 {s_lat['p99_ms']:7.2f} ms")
    print(f"  3-member        p50 {m_lat['p50_ms']:7.2f} ms   p99 {m_lat['p99_ms']:7.2f} ms   "
          f"(x{m_lat['p50_ms'] / s_lat['p50_ms']:.2f} and x{m_lat['p99_ms'] / s_lat['p99_ms']:.2f} the single server)")

    s_thr = burst(s_root, single.operator(), None, THROUGHPUT_BATCHES, 64, "thr")
    m_thr = burst(m_root, members.operator(), m_submit, THROUGHPUT_BATCHES, 64, "thr")
    print(f"throughput, acknowledged single-record batches ({THROUGHPUT_BATCHES}, 64 in flight):")
    print(f"  single server   {s_thr['batches_per_s']:8.0f} /s")
    print(f"  3-member        {m_thr['batches_per_s']:8.0f} /s   (x{m_thr['batches_per_s'] / s_thr['batches_per_s']:.2f} "
          f"the single server)")
    single.stop_server()

    folder = os.path.join(members.root_dir, "keys")
    os.makedirs(folder, exist_ok=True)
    times = []
    for trial in range(FAILOVER_TRIALS):
        key = kc.keyclone("keygen", f"fail-{trial}", "--dir", folder)[0].strip()
        leader = members.leader()
        killed = time.monotonic()
        members.stop(leader, signal.SIGKILL)
        out, err = kc.keyclone("register", f"fail-{trial}", "--key", key, "--dir", members.dir, expect=None)
        took = time.monotonic() - killed
        if not out.startswith(f"registered fail-{trial}"):
            raise RuntimeError(f"trial {trial}: {out} {err}")
        times.append(took)
        members.start(leader)
        members.wait_same()
    print(f"failover, kill -9 of the leader to the next acknowledged registration ({FAILOVER_TRIALS} trials, "
          f"election timeout 500 ms):")
    print(f"  p50 {statistics.median(times):.2f} s   max {max(times):.2f} s   (goal: under 2 s)   "
          f"all: {' '.join(f'{t:.2f}' for t in times)}")
    for name in members.running():
        members.stop(name)


if __name__ == "__main__":
    main()
