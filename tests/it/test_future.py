#!/usr/bin/python3
"""Attacks whose defence a later issue builds, run today and expected to
fail (kc.expected_failure), so docs/security.md changes when they land:

- T4, withholding: a server that holds its head key shows an agent the log
  without its last batch (a revocation) with fresh heads: the agent should
  go stale within the staleness window (witness cosignatures, issue 15);
- T6, split view: two agents shown two different histories at the same
  sequence, both operator-signed and chained: one of them should notice
  (witnesses, heads in handshake metadata, issue 15);
- T18, renewal: a root can be renewed before it expires without restarting
  anything (`keyclone root renew`, issue 11).
"""
import os
import time

import zmq

import kc
from cluster import Cluster, free_base_port

C = Cluster(server_options=["--heartbeat", "200"])
T = C.root_dir
KEYS = os.path.join(T, "keys")


def test_setup():
    C.start_server()
    for _ in range(2):
        C.add_agent(options=["--stale-after", "1000"])
    C.cli("register", "victim", "--key", kc.keyclone("keygen", "victim", "--dir", KEYS)[0].strip())
    C.wait_converged()


@kc.expected_failure("issue 15: witnesses")
def test_withholding_a_revocation():
    hidden, seen = C.agents
    hidden.stop()
    C.cli("revoke", "victim")
    C.wait_converged(agents=[seen])
    kc.check(seen.request("NAME", "victim")["keys"][0]["status"] == "revoked", seen.request("NAME", "victim"))
    C.stop_server()
    rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "withhold"],
                     log=os.path.join(T, "rogue-withhold.log"))
    try:
        hidden.start()
        kc.wait_for(lambda: hidden.status()["state"] != "syncing", 10, what="the hidden agent to sync")
        time.sleep(2)                        # twice its staleness window
        st = hidden.status()
        kc.check(st["state"] == "stale" or hidden.request("NAME", "victim")["keys"][0]["status"] != "trusted",
                 f"the withheld revocation went unnoticed: {st['state']} at seq {st['seq']}, victim trusted")
    finally:
        kc.stop(rogue)
        C.start_server()
        C.wait_converged()


@kc.expected_failure("issue 15: witnesses and heads in handshake metadata")
def test_a_split_view():
    first, second = C.agents
    batches = []
    for n in range(2):
        path = os.path.join(T, f"split-{n}.kcb")
        C.cli("sign", "--register", f"split-{n}={zmq.curve_keypair()[0].decode()}", "--out", path)
        batches.append(path)
    C.stop_server()
    rogues = []
    for agent, batch in zip((first, second), batches):
        base = free_base_port()
        endpoints = [f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}"]
        rogues.append(kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "extend", batch, *endpoints],
                               log=os.path.join(T, f"rogue-{agent.name}.log")))
        agent.stop()
        agent.options = ["--stale-after", "1000", "--server-snapshot", endpoints[0],
                         "--server-updates", endpoints[1]]
        agent.start()
    try:
        for agent in (first, second):
            kc.wait_for(lambda: agent.status()["state"] == "fresh", 10, what=f"{agent.name} to sync")
        time.sleep(2)
        a, b = first.status(), second.status()
        kc.check(a["seq"] == b["seq"], f"{a['seq']} != {b['seq']}")
        kc.check(a["chain"] == b["chain"] or "stale" in (a["state"], b["state"]),
                 f"two histories at seq {a['seq']} went unnoticed: {a['chain'][:16]} and {b['chain'][:16]}, "
                 f"both {a['state']}")
    finally:
        for rogue in rogues:
            kc.stop(rogue)


if __name__ == "__main__":
    kc.main([test_setup, test_withholding_a_revocation, test_a_split_view])
