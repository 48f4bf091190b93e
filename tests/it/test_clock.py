#!/usr/bin/python3
"""Clocks and the root's lifetime, with real processes whose wall clock is
moved by an LD_PRELOAD shim (build/tests/libkc_clockshift.so):

- an agent whose clock runs 60 s fast syncs and stays fresh, and its status
  shows the measured difference;
- a server run for a while with its clock an hour ahead makes agents refuse
  its heads (from the future) without remembering them, so once it runs
  with the right clock again they are fresh with no restart;
- a normal first sync logs no "older than one already accepted (replayed?)";
- a root in force that expires turns agents stale (fail-closed: lookups
  answer "stale"), with warnings in the log and status beforehand.
"""
import json
import os
import re
import time

import kc
from cluster import Cluster

SHIM = os.path.join(kc.TESTS, "libkc_clockshift.so")
C = Cluster(server_options=["--heartbeat", "200"])
T = C.root_dir


def shifted(offset_ms, name):
    """Environment for a process whose clock is offset_ms ahead (file can be
    rewritten to move it while it runs)."""
    path = os.path.join(T, f"clock-{name}")
    with open(path, "w") as f:
        f.write(str(offset_ms))
    # ASan builds want their runtime first; a shim is fine there
    asan = os.environ.get("ASAN_OPTIONS", "")
    return dict(os.environ, LD_PRELOAD=SHIM, KC_CLOCK_FILE=path,
                ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")


def test_setup():
    C.start_server()
    C.add_agent(options=["--stale-after", "1000"])
    C.wait_converged()


def test_an_agent_60_seconds_fast_syncs():
    agent = C.add_agent(name="fast", start=False, options=["--stale-after", "1000"])
    agent.proc = kc.spawn([os.path.join(kc.BIN, "keyclone-agent"), "--dir", agent.dir,
                           "--root", os.path.join(C.dir, "root"), "--stale-after", "1000"],
                          log=agent.log, env=shifted(60000, "fast"))
    status = C.wait_converged(agents=[agent])
    st = agent.status()
    kc.check(st["state"] == "fresh" and -65000 < st["clock_offset_ms"] < -55000, st)
    kc.check("clock is 60." in agent.log_text() and "ahead of the server's" in agent.log_text(),
             agent.log_text())
    out, _ = kc.keyclone("status", "--agent", agent.endpoint)
    kc.check(re.search(r"server clock -6\d\.\d+ s from this node's", out), out)
    agent.stop()
    C.agents.remove(agent)
    print(f"    fresh at seq {status['seq']} with the clock {st['clock_offset_ms'] / 1000:+.1f} s off")


def test_a_server_an_hour_ahead_then_back():
    agent = C.agents[0]
    log_size = len(agent.log_text())
    C.stop_server()
    C.server = kc.spawn([os.path.join(kc.BIN, "keyclone-server"), "--dir", C.dir, *C.server_options],
                        log=C.server_log, env=shifted(3600000, "server"))
    # The refusal itself: heads from an hour ahead, beyond the allowed skew
    kc.wait_for(lambda: "in the future" in agent.log_text()[log_size:], 10,
                what="the agent to refuse the future heads")
    kc.wait_for(lambda: agent.status()["state"] == "stale", 10, what="the agent to go stale")
    time.sleep(1)                            # the server runs ahead a while longer
    C.stop_server()
    C.start_server()
    kc.wait_for(lambda: agent.status()["state"] == "fresh", 10,
                what="the agent to be fresh again with no restart")
    kc.check(agent.proc.poll() is None, "the agent restarted")
    text = agent.log_text()[log_size:]
    kc.check("older than one already accepted" not in text, text)


def test_no_replay_warning_on_a_first_sync():
    """Agents that take a while to sync (50,000 keys) while the server
    publishes heads every 200 ms: the heads queued during their first sync
    are older than its END head, which is no replay."""
    C.burst(10, records=5000, prefix="bulk")
    agents = [C.add_agent(name=f"first-{n}", options=["--stale-after", "1000"]) for n in range(3)]
    C.wait_converged(agents=agents)
    time.sleep(0.5)                          # a few heartbeats after the sync
    for agent in agents:
        text = agent.log_text()
        kc.check("synced seq 0 ->" in text, text)
        kc.check("older than one already accepted" not in text, f"{agent.name}:\n{text}")


def test_an_expired_root_makes_agents_stale():
    # long enough for the set-up below on a loaded box (6 s was not, under ASan with a load of 6)
    expiring = Cluster(server_options=["--heartbeat", "200"], init_options=["--expires", "20s"])
    expiring.start_server()
    closed = expiring.add_agent(name="closed", options=["--stale-after", "60000", "--policy", "fail-closed"])
    serving = expiring.add_agent(name="serving", options=["--stale-after", "60000"])
    key = kc.keyclone("keygen", "node", "--dir", os.path.join(expiring.root_dir, "keys"))[0].strip()
    expiring.cli("register", "node", "--key", key)
    expiring.wait_converged()
    st = closed.status()
    kc.check(st["root_days_left"] == 0 and st["state"] == "fresh", st)
    kc.check("expires" in closed.log_text() and "in 0 days" in closed.log_text(), closed.log_text())
    out, err = kc.keyclone("status", "--agent", closed.endpoint, expect=3)    # expires within a week
    kc.check("renew it soon" in out and "expires at" in err, out + err)
    kc.check(closed.lookup(key)["status"] == "trusted", closed.lookup(key))
    kc.check("the root v1 expires at" in expiring.server_log_text(), expiring.server_log_text())
    # The root expires: stale at once (not after stale-after), policy applies
    kc.wait_for(lambda: "the root in force, v1, expired" in closed.log_text(), 30,
                what="the agent to report the expired root")
    for agent in (closed, serving):
        kc.wait_for(lambda: agent.status()["state"] == "stale", 5, what=f"{agent.name} to be stale")
    kc.check(closed.lookup(key)["status"] == "stale", closed.lookup(key))
    kc.check(serving.lookup(key)["status"] == "trusted", serving.lookup(key))
    out, err = kc.keyclone("status", "--agent", closed.endpoint, expect=3)
    kc.check("EXPIRED, renew it" in out and "expired at" in err, out + err)
    time.sleep(0.5)                          # heads keep coming: still stale
    kc.check(closed.status()["state"] == "stale", closed.status())
    kc.wait_for(lambda: "the root v1 expired at" in expiring.server_log_text(), 5,
                what="the server to report the expired root")


if __name__ == "__main__":
    kc.main([test_setup, test_an_agent_60_seconds_fast_syncs, test_a_server_an_hour_ahead_then_back,
             test_no_replay_warning_on_a_first_sync, test_an_expired_root_makes_agents_stale])
