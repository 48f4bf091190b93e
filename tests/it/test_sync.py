#!/usr/bin/python3
"""1 server + 5 agents: 10,000 keys registered in batches and 200 one at a
time; every agent converges to the server's head and can look every key up;
10 revocations reach every agent, including as events."""
import json
import os
import subprocess

import zmq

import kc
from cluster import Cluster

C = Cluster()
KEYS = {}                                   # Z85 -> name


def test_start():
    C.start_server()
    for _ in range(5):
        C.add_agent()
    C.wait_converged()


def test_register_10000_in_batches():
    lines = []
    for i in range(10000):
        public, _ = zmq.curve_keypair()
        name = f"bulk-{i}"
        KEYS[public.decode()] = name
        lines.append(f"{name}={public.decode()},tag=role=bulk")
    source = os.path.join(C.root_dir, "bulk.txt")
    with open(source, "w") as f:
        f.write("\n".join(lines) + "\n")
    out, _ = C.cli("register", "--from", source, "--batch-size", "1000", "--json")
    result = json.loads(out)
    kc.check(result["records"] == 10000 and result["batches"] == 10, out)


def test_register_200_one_at_a_time():
    pending = []
    for i in range(200):
        public, _ = zmq.curve_keypair()
        name = f"single-{i}"
        KEYS[public.decode()] = name
        args = [kc.KEYCLONE, "register", name, "--key", public.decode(), "--tag", "role=single",
                "--dir", C.dir]
        pending.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        if len(pending) == 4:               # four clients at a time
            for proc in pending:
                out, err = proc.communicate(timeout=30)
                kc.check(proc.returncode == 0 and "registered" in out, err)
            pending = []
    status = C.server_status()
    kc.check(status["keys"] == 10200 + 5, f"server holds {status['keys']} keys")


def test_every_agent_converges_and_knows_every_key():
    status = C.wait_converged()
    for agent in C.agents:
        st = agent.status()
        kc.check(st["keys"] == status["keys"], f"{agent.name} holds {st['keys']} keys")
    ctx = zmq.Context.instance()
    keys = list(KEYS)
    for agent in C.agents:
        s = ctx.socket(zmq.DEALER)
        s.connect(agent.endpoint)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for key in chunk:
                s.send_multipart([b"LOOKUP", key.encode()])
            for key in chunk:
                reply = s.recv_multipart()
                kc.check(reply[0] == b"OK", reply)
                entry = json.loads(reply[1])
                kc.check(entry["status"] == "trusted" and entry["name"] == KEYS[entry["key"]],
                         f"{agent.name}: {entry}")
        s.close()


def test_revoke_10_reaches_every_agent():
    ctx = zmq.Context.instance()
    events = ctx.socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"revoked")
    events.connect(C.agents[0].events)
    # one victim's Z85 key starts with '-': the CLI must not take it for an option
    dashed = next(key for key in KEYS if key.startswith("-"))
    victims = [dashed] + [key for key in list(KEYS)[5000:5010] if key != dashed][:9]
    import time
    time.sleep(0.2)                         # let the subscription reach the agent
    for key in victims:
        out, _ = C.cli("revoke", key, "--reason", "test revocation")
        kc.check(f"revoked {KEYS[key]}" in out, out)
    C.wait_converged()
    for agent in C.agents:
        for key in victims:
            entry = agent.lookup(key)
            kc.check(entry["status"] == "revoked" and entry["reason"] == "test revocation", entry)
        kc.check(agent.status()["revoked"] == 10, agent.status())
    seen = set()
    while events.poll(2000) and len(seen) < 10:
        topic, body = events.recv_multipart()
        seen.add(json.loads(body)["key"])
    kc.check(seen == set(victims), f"revoked events for {len(seen)} of 10 keys")
    events.close()
    # the server reports every agent at its head
    status = C.server_status()
    kc.check(len(status["agents"]) == 5, status)
    kc.wait_for(lambda: all(a["behind"] == 0 for a in C.server_status()["agents"]), 10,
                what="every agent acknowledged the head")
    # a revoked key cannot be registered again
    _, err = C.cli("register", "again", "--key", victims[0], expect=1)
    kc.check("terminal" in err, err)


def test_clean_shutdown():
    for agent in C.agents:
        kc.check(agent.stop() == 0, f"{agent.name} exit status")
        kc.check("shutting down" in agent.log_text(), agent.log_text())
    kc.check(C.stop_server() == 0, "server exit status")
    kc.check("shutting down" in C.server_log_text(), C.server_log_text())


kc.main([test_start, test_register_10000_in_batches, test_register_200_one_at_a_time,
         test_every_agent_converges_and_knows_every_key, test_revoke_10_reaches_every_agent,
         test_clean_shutdown])
