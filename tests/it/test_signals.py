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


def test_log_files_are_opened_again_on_sighup():
    """--log FILE: lines go to the file; after logrotate's rename, SIGHUP opens
    the path again and the next lines land in the new file, not the old."""
    work = kc.tempdir("kc-logs-")
    agent_log = os.path.join(work, "agent.log")
    agent = C.add_agent(name="logs-to-a-file", options=["--log", agent_log])
    C.wait_converged(agents=[agent])
    kc.wait_for(lambda: os.path.exists(agent_log) and os.path.getsize(agent_log) > 0,
                what="the agent logging to its file")
    with open(agent.log, errors="replace") as f:
        kc.check("I: " not in f.read(), "the agent also logged to standard output")
    os.rename(agent_log, agent_log + ".1")
    agent.proc.send_signal(signal.SIGHUP)
    kc.wait_for(lambda: os.path.exists(agent_log), what="the agent's log file made again")
    grows(agent_log, 0, f"SIGHUP: log file {agent_log} opened again")
    grows(agent_log, 0, "SIGHUP: configuration read again")
    with open(agent_log + ".1", errors="replace") as f:
        kc.check("opened again" not in f.read(), "the reopen line went to the rotated file")
    kc.check(agent.status()["state"] == "fresh", agent.status())
    #   The server, in a cluster of its own
    other = Cluster()
    server_log = os.path.join(work, "server.log")
    other.start_server("--log", server_log)
    kc.wait_for(lambda: os.path.exists(server_log) and os.path.getsize(server_log) > 0,
                what="the server logging to its file")
    os.rename(server_log, server_log + ".1")
    other.server.send_signal(signal.SIGHUP)
    kc.wait_for(lambda: os.path.exists(server_log), what="the server's log file made again")
    grows(server_log, 0, f"SIGHUP: log file {server_log} opened again")
    grows(server_log, 0, "SIGHUP: configuration read again")
    kc.check(other.server_status()["seq"] >= 0 and other.server.poll() is None, "the server ended")
    #   A path it cannot open: said, and the daemon does not start
    out = kc.run([os.path.join(kc.BIN, "keyclone-agent"), "--dir", work, "--log", "/nonexistent/dir/x.log"],
                 expect=1)
    kc.check("cannot open the log file '/nonexistent/dir/x.log'" in out[1], out)
    other.stop_server()


if __name__ == "__main__":
    kc.main([test_setup, test_agent_sighup_applies_and_names_the_rest,
             test_server_sighup_applies_and_names_the_rest, test_log_files_are_opened_again_on_sighup])
