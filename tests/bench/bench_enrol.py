#!/usr/bin/python3
"""bench_enrol - enrolment through a grant to trusted on 20 agents (issue 12):
a node runs `keyclone enrol NAME --token FILE` (a new process: it makes the
node's key, signs its registration with the token and submits it); the
server checks it against the grant and commits it; each of 20 agents checks
it against the grant in log order and applies it. Timed from just before the
command starts to the 20th agent's "registered" event, p50/p99 over 200
nodes, beside the same path for an operator's `keyclone register` (a
process too) measured in the same run, and the command alone (its exit).
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import kc                                   # noqa: E402
from bench_crowd import Events              # noqa: E402
from cluster import Cluster                 # noqa: E402

AGENTS = 20
COUNT = int(os.environ.get("KC_BENCH_ENROL", "200"))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run(events, args, name):
    started = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    exited = time.monotonic()
    seen = events.until(lambda e: e.get("event") == "registered" and e.get("name") == name, 30)
    if len(seen) < AGENTS:
        raise AssertionError(f"{name}: {len(seen)} of {AGENTS} agents saw it")
    return (max(seen.values()) - started) * 1000, (exited - started) * 1000


def main():
    cluster = Cluster(server_options=["--read", "any"])
    cluster.start_server()
    for _ in range(AGENTS):
        cluster.add_agent(register=False)
    cluster.wait_converged(timeout=60)
    token = os.path.join(cluster.root_dir, "fleet.token")
    cluster.cli("grant", "create", "--token", token, "--pattern", "node-*", "--uses", str(2 * COUNT),
                "--tag", "role=node", "--expires", "1d", "--operator", "op1")
    cluster.wait_converged(timeout=60)
    events = Events(cluster.agents, "")
    nodes = os.path.join(cluster.root_dir, "nodes")
    os.makedirs(nodes)
    root = os.path.join(cluster.dir, "root")
    grant, grant_cmd, register, register_cmd = [], [], [], []
    for i in range(COUNT):
        name = f"node-{i:04d}"
        total, command = run(events, [kc.KEYCLONE, "enrol", name, "--token", token, "--key",
                                      os.path.join(nodes, name), "--dir", nodes, "--root", root], name)
        grant.append(total)
        grant_cmd.append(command)
        key = kc.keyclone("keygen", f"op-{i:04d}", "--dir", nodes)[0].strip()
        total, command = run(events, [kc.KEYCLONE, "register", f"op-{i:04d}", "--key", key, "--operator", "op1",
                                      "--dir", cluster.dir], f"op-{i:04d}")
        register.append(total)
        register_cmd.append(command)
    events.close()
    print(f"enrolment to trusted on {AGENTS} agents, {COUNT} nodes each way, one at a time:")
    print(f"  enrol --token (grant): p50 {statistics.median(grant):6.1f} ms  p99 {percentile(grant, 99):6.1f} ms"
          f"   (the command alone p50 {statistics.median(grant_cmd):.1f} ms)")
    print(f"  register (operator):   p50 {statistics.median(register):6.1f} ms  p99 {percentile(register, 99):6.1f} ms"
          f"   (the command alone p50 {statistics.median(register_cmd):.1f} ms)")
    print(f"  through a grant takes {statistics.median(grant) / statistics.median(register):.2f}x an operator's "
          f"registration (p50); both include starting the keyclone process")
    for agent in cluster.agents:
        agent.stop()
    cluster.stop_server()


if __name__ == "__main__":
    main()
