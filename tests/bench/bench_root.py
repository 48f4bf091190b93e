#!/usr/bin/python3
"""bench_root - a root change to applied on 20 agents (issue 11), beside a
single-record registration measured in the same run, p50/p99.

One server and 20 real agents on this box. Each trial submits one entry,
already signed offline (so no CLI start-up or signing is timed): a renewal
(the successor of the root in force, made with `keyclone root renew` and
cosigned), or a registration (`keyclone sign`), alternating. Timed in this
process from just before SUBMIT to the 20th agent's event for it ("root" or
"registered") on their event streams; the server's OK (its durable commit)
is printed beside them. Then server CURVE key rotations with agents
connected: a registration submitted right after each switch (by a client
that knows only the new key) until it is applied on every agent.
"""
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq                                  # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402

AGENTS = int(os.environ.get("KC_BENCH_ROOT_AGENTS", "20"))
TRIALS = int(os.environ.get("KC_BENCH_ROOT_TRIALS", "30"))
SWITCHES = int(os.environ.get("KC_BENCH_ROOT_SWITCHES", "3"))


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    cluster = Cluster(operators=2, threshold=2, server_options=["--read", "any"])
    cluster.start_server()
    for _ in range(AGENTS):
        cluster.add_agent(register=False, options=["--check-interval", "0"])
    cluster.wait_converged(timeout=120)
    ctx = zmq.Context.instance()
    root = json.loads(cluster.cli("root", "show", "--json")[0])
    submit = ctx.socket(zmq.DEALER)
    submit.curve_publickey, submit.curve_secretkey = zmq.curve_keypair()
    submit.curve_serverkey = root["server_key"].encode()
    submit.connect(root["submit"])
    events = []
    poller = zmq.Poller()
    for agent in cluster.agents:
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.SUBSCRIBE, b"root")
        s.setsockopt(zmq.SUBSCRIBE, b"registered")
        s.connect(agent.events)
        poller.register(s, zmq.POLLIN)
        events.append(s)
    time.sleep(1.0)                                 # subscriptions in place
    work = os.path.join(cluster.root_dir, "bench")
    os.makedirs(work, exist_ok=True)
    figures = {"root": [], "registered": []}
    commits = {"root": [], "registered": []}
    for trial in range(2 * TRIALS):
        kind = "root" if trial % 2 == 0 else "registered"
        path = os.path.join(work, f"entry-{trial}")
        if kind == "root":
            cluster.cli("root", "renew", "--operator", "op1", "--out", path)
            cluster.cli("cosign", path, "--operator", "op2", "--root", os.path.join(cluster.dir, "root"))
        else:
            key = kc.keyclone("keygen", f"n{trial}", "--dir", work)[0].strip()
            cluster.cli("sign", "--register", f"n{trial}={key}", "--operator", "op1", "--operator", "op2",
                        "--out", path)
        with open(path, "rb") as f:
            data = f.read()
        for s in events:                            # nothing stale in the queues
            while s.poll(0):
                s.recv_multipart()
        started = time.perf_counter()
        submit.send_multipart([b"SUBMIT", data])
        reply = submit.recv_multipart()
        committed = time.perf_counter()
        kc.check(reply[0] == b"OK", reply)
        seen = set()
        deadline = started + 10
        while len(seen) < AGENTS:
            for s, _ in poller.poll(max(1, int((deadline - time.perf_counter()) * 1000))):
                frames = s.recv_multipart()
                if frames[0] == kind.encode():
                    seen.add(s)
            kc.check(time.perf_counter() < deadline, f"{kind} reached only {len(seen)} of {AGENTS} agents")
        figures[kind].append((time.perf_counter() - started) * 1000)
        commits[kind].append((committed - started) * 1000)
    print(f"root change vs registration, applied on all {AGENTS} agents, {TRIALS} of each, alternating:")
    for kind, label in (("root", "root change (renewal)"), ("registered", "registration (1 record)")):
        values = figures[kind]
        print(f"  {label:<26} p50 {statistics.median(values):6.2f} ms  p99 {percentile(values, 0.99):6.2f} ms"
              f"  (server's durable OK p50 {statistics.median(commits[kind]):5.2f} ms)")
    ratio = statistics.median(figures["root"]) / statistics.median(figures["registered"])
    print(f"  a root change costs {ratio:.2f}x a registration at p50 (each agent verifies a successor "
          f"root: one signature per signer, old and new)")
    print(f"server CURVE key rotations (--overlap 0: the switch 2 s after the change), {SWITCHES} of them:")
    reached = []
    for trial in range(SWITCHES):
        key = kc.keyclone("keygen", f"s{trial}", "--dir", work)[0].strip()
        path = os.path.join(work, f"switch-{trial}")
        cluster.cli("sign", "--register", f"s{trial}={key}", "--operator", "op1", "--operator", "op2",
                    "--out", path)
        with open(path, "rb") as f:
            data = f.read()
        log_size = len(cluster.server_log_text())
        cluster.cli("root", "rotate-server-key", "--overlap", "0", "--operator", "op1", "--operator", "op2")
        kc.wait_for(lambda: "the overlap ended" in cluster.server_log_text()[log_size:], 10, interval=0.005,
                    what="the key switch")
        for s in events:
            while s.poll(0):
                s.recv_multipart()
        started = time.perf_counter()
        fresh = ctx.socket(zmq.DEALER)              # a client that knows only the new key
        fresh.curve_publickey, fresh.curve_secretkey = zmq.curve_keypair()
        with open(os.path.join(cluster.dir, "server", "curve")) as f:
            fresh.curve_serverkey = f.read().split('public-key = "')[1].split('"')[0].encode()
        fresh.connect(root["submit"])
        fresh.send_multipart([b"SUBMIT", data])
        kc.check(fresh.recv_multipart()[0] == b"OK", "the registration after the switch")
        fresh.close(0)
        seen = set()
        deadline = started + 20
        while len(seen) < AGENTS:
            for s, _ in poller.poll(max(1, int((deadline - time.perf_counter()) * 1000))):
                if s.recv_multipart()[0] == b"registered":
                    seen.add(s)
            kc.check(time.perf_counter() < deadline, f"reached only {len(seen)} of {AGENTS} agents")
        reached.append((time.perf_counter() - started) * 1000)
    print(f"  a registration submitted at the switch, on all {AGENTS} agents: "
          + ", ".join(f"{v:.0f} ms" for v in reached)
          + " (each agent notices the refused handshake at its next second, reconnects with the new key"
          " and syncs from its sequence; none went stale)")
    for agent in cluster.agents:
        kc.check(agent.status()["state"] == "fresh", agent.status())
    for agent in cluster.agents:
        agent.stop()
    cluster.stop_server()


if __name__ == "__main__":
    main()
