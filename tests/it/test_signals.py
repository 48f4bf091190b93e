#!/usr/bin/python3
"""SIGHUP on the daemons (issue 13): each reads its configuration file again,
applies what it can change while running, names what needs a restart, keeps
running on a file it cannot read, and never dies of the signal (it used to).
"""
import os
import signal
import time

import kc
from cluster import Cluster

C = Cluster()
AGENT_CFG = os.path.join(C.root_dir, "agent.cfg")
SERVER_CFG = os.path.join(C.root_dir, "server.cfg")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def grows(path, size, text, timeout=10):
    def found():
        with open(path, errors="replace") as f:
            return text in f.read()[size:]
    return kc.wait_for(found, timeout, what=f"'{text}' in {os.path.basename(path)}")


def test_setup():
    write(SERVER_CFG, "server\n    head-valid = 5000\n")
    C.start_server("--config", SERVER_CFG)
    write(AGENT_CFG, "agent\n    stale-after = 5000\n    policy = serve\n")
    agent = C.add_agent(options=["--config", AGENT_CFG])
    C.wait_converged()
    kc.check(agent.status()["policy"] == "serve", agent.status())


def test_agent_sighup_applies_and_names_the_rest():
    agent = C.agents[0]
    size = os.path.getsize(agent.log)
    agent.proc.send_signal(signal.SIGHUP)
    grows(agent.log, size, "SIGHUP: configuration read again: nothing that applies while running changed")
    size = os.path.getsize(agent.log)
    write(AGENT_CFG, "agent\n    stale-after = 2000\n    policy = fail-closed\n    cache = \"elsewhere.db\"\n")
    agent.proc.send_signal(signal.SIGHUP)
    grows(agent.log, size, "applied stale-after 5000 -> 2000 ms, policy serve -> fail-closed")
    grows(agent.log, size, "SIGHUP: cache changed in the configuration; restart the agent to apply")
    status = agent.status()
    kc.check(status["policy"] == "fail-closed" and status["state"] == "fresh", status)
    kc.check(agent.proc.poll() is None, "the agent ended on SIGHUP")
    # a file it cannot use: said, and the agent runs on as it was
    size = os.path.getsize(agent.log)
    write(AGENT_CFG, "agent\n    policy = sometimes\n")
    agent.proc.send_signal(signal.SIGHUP)
    grows(agent.log, size, "SIGHUP: the configuration could not be read again; running as before")
    kc.check(agent.status()["policy"] == "fail-closed", agent.status())
    # a registration still reaches it
    other = C.add_agent(name="after-sighup", register=True, start=False)
    C.agents.remove(other)
    C.wait_converged(agents=[agent])
    kc.check(agent.lookup(other.key)["status"] == "trusted", agent.lookup(other.key))


def test_server_sighup_applies_and_names_the_rest():
    size = os.path.getsize(C.server_log)
    write(SERVER_CFG, "server\n    head-valid = 3000\n    heartbeat = 500\n    read = any\n")
    C.server.send_signal(signal.SIGHUP)
    grows(C.server_log, size, "SIGHUP: configuration read again: applied heartbeat 1000 -> 500 ms, "
                              "head-valid 5000 -> 3000 ms")
    grows(C.server_log, size, "SIGHUP: read changed in the configuration; restart the server to apply")
    kc.check(C.server.poll() is None, "the server ended on SIGHUP")
    # heads now come every 500 ms: the agent's head age stays under it
    time.sleep(1.2)
    ages = [C.agents[0].status()["head_age_ms"] for _ in range(5) if time.sleep(0.11) is None]
    kc.check(max(ages) < 900, ages)
    C.wait_converged()


if __name__ == "__main__":
    kc.main([test_setup, test_agent_sighup_applies_and_names_the_rest,
             test_server_sighup_applies_and_names_the_rest])
