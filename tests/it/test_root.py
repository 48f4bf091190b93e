#!/usr/bin/python3
"""The trust root over time (issue 11): root changes travel in the log.

A short-lived root is renewed while agents run: they stay fresh past the old
expiry with no restart. Operators are added and removed; a removed
operator's signature is refused by the server and, when a rogue server
serves it anyway, by the agents. An agent installed with the genesis root
after three root changes catches up to the root in force. Root changes that
jump a version, are signed only by the old or only by the new operators, or
would lock the directory out are refused with a reason, and nothing changes.
A kill -9 of the server right after it accepted a root change loses nothing.
The server's head key and CURVE key rotate with agents connected through the
switch; the audit log reads the same from the server and from any agent.
"""
import json
import os
import re
import shutil
import signal
import time

import kc
from cluster import Cluster, submit_raw

LIFETIME = 12                                       # seconds of the genesis root
C = Cluster(server_options=["--heartbeat", "200"], operators=2, threshold=1,
            init_options=["--expires", f"{LIFETIME}s"])
KEYS = os.path.join(C.root_dir, "keys")
STARTED = time.time()


def root_show():
    return json.loads(C.cli("root", "show", "--json")[0])


def agent_root(agent):
    return agent.status()["root_version"]


def key_of(path):
    with open(path) as f:
        return re.search(r'public-key = "(.*)"', f.read()).group(1)


def add_agent(name=None, options=()):
    agent = C.add_agent(name=name, register=False, start=False, options=options)
    C.cli("register", agent.name, "--key", agent.key, "--operator", "op1")
    return agent.start()


def test_setup():
    C.start_server()
    add_agent(options=["--stale-after", "1000"])
    C.wait_converged()
    root = root_show()
    kc.check(root["version"] == 1 and root["format"] == 2 and root["days_left"] == 0, root)
    # Monitoring's cue: status exits 3 while the root in force expires within a week
    for args in (["--server"], ["--agent", C.agents[0].endpoint]):
        out, err = C.cli("status", *args, expect=3)
        kc.check("the root in force expires at" in err, err)


def test_renewal_keeps_agents_fresh_past_the_old_expiry():
    agent = C.agents[0]
    out, _ = C.cli("root", "renew", "--expires", "30d", "--operator", "op1")
    kc.check(re.search(r"^expires: .* -> .*$", out, re.M) and "root v2 accepted at seq" in out, out)
    kc.wait_for(lambda: agent_root(agent) == 2, 10, what="the agent to use root v2")
    kc.check("root v2 in force from seq" in agent.log_text(), agent.log_text()[-1500:])
    root = root_show()
    kc.check(root["version"] == 2 and 29 <= root["days_left"] <= 30, root)
    for args in (["--server"], ["--agent", agent.endpoint, "--json"]):
        C.cli("status", *args, expect=0)
    # Past the genesis root's expiry: still fresh, and registrations still work
    time.sleep(max(0.0, STARTED + LIFETIME + 1 - time.time()))
    key = kc.keyclone("keygen", "after-expiry", "--dir", KEYS)[0].strip()
    out, _ = C.cli("register", "after-expiry", "--key", key, "--operator", "op1")
    kc.check("registered after-expiry" in out, out)
    C.wait_converged()
    time.sleep(1.5)                         # longer than --stale-after
    status = agent.status()
    kc.check(status["state"] == "fresh" and status["root_version"] == 2, status)
    kc.check(agent.proc.poll() is None, "the agent stopped")


def test_an_operator_is_added_then_removed():
    out, _ = kc.keyclone("keygen", "carol", "--operator", "--dir", KEYS)
    kc.check("wrote operator key" in out, out)
    out, _ = C.cli("root", "add-operator", "carol", "--key", os.path.join(KEYS, "carol"), "--operator", "op1")
    kc.check("operator added: carol" in out and "root v3 accepted" in out, out)
    carol = os.path.join(KEYS, "carol")
    key = kc.keyclone("keygen", "by-carol", "--dir", KEYS)[0].strip()
    out, _ = C.cli("register", "by-carol", "--key", key, "--operator", carol)
    kc.check("registered by-carol" in out, out)
    # A batch signed by carol while she is an operator, kept for later
    late = kc.keyclone("keygen", "late", "--dir", KEYS)[0].strip()
    kc.keyclone("sign", "--dir", C.dir, "--root", save_root("v3"), "--operator", carol,
                "--out", os.path.join(KEYS, "late.batch"), "--register", f"late={late}")
    out, _ = C.cli("root", "remove-operator", "carol", "--operator", "op2")
    kc.check("operator removed: carol" in out and "root v4 accepted" in out, out)
    C.wait_converged()
    for agent in C.agents:
        kc.check(agent_root(agent) == 4, agent.status())
    # The server refuses carol's signature from now on, with the reason
    out, err = C.cli("submit", os.path.join(KEYS, "late.batch"), expect=1)
    kc.check("not an operator in root v4" in err, err)
    # What she signed while an operator stays valid
    kc.check(C.agents[0].lookup(key_of(os.path.join(KEYS, "by-carol")))["status"] == "trusted",
             C.agents[0].lookup(key_of(os.path.join(KEYS, "by-carol"))))


def save_root(label):
    path = os.path.join(KEYS, f"root-{label}")
    C.cli("root", "show", "--out", path)
    return path


def test_a_rogue_server_cannot_use_a_removed_operator():
    agent = C.agents[0]
    seq = agent.status()["seq"]
    log_size = len(agent.log_text())
    C.stop_server()
    rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "extend", os.path.join(KEYS, "late.batch")],
                     log=os.path.join(C.root_dir, "rogue-extend.log"))
    try:
        kc.wait_for(lambda: "not an operator in root v4" in agent.log_text()[log_size:], 20,
                    what="the agent to refuse the removed operator's batch")
        kc.check(agent.status()["seq"] == seq, agent.status())
    finally:
        kc.stop(rogue)
    C.start_server()
    C.wait_converged()


def test_a_genesis_agent_follows_three_root_changes():
    late = add_agent(name="installed-late")
    C.wait_converged()
    status = late.status()
    kc.check(status["root_version"] == 4 and status["state"] == "fresh", status)
    kc.check("root v4 in force from seq" in late.log_text(), late.log_text())
    # and keeps it across a restart (from its cache, not from the log again)
    late.stop()
    late.start()
    kc.wait_for(lambda: late.status() and late.status()["root_version"] == 4, 10, what="restart")
    kc.check("root v4 in force (pinned v1, followed through the log)" in late.log_text(), late.log_text())


def test_an_altered_root_change_in_a_cache_is_not_trusted():
    """A root change in an agent's cache that does not follow (here: v3's
    bytes stored as v2's) makes the agent rebuild the cache from the server
    and reach the root in force again; it never starts from the altered one."""
    import sqlite3
    late = [a for a in C.agents if a.name == "installed-late"][0]
    late.stop()
    with sqlite3.connect(late.cache) as db:
        rows = db.execute("SELECT seq, data FROM roots ORDER BY seq").fetchall()
        kc.check(len(rows) == 3, rows)
        db.execute("UPDATE roots SET data = ? WHERE seq = ?", (rows[1][1], rows[0][0]))
    size = len(late.log_text())
    late.start()
    kc.wait_for(lambda: late.status() and late.status()["root_version"] == 4
                and late.status()["state"] == "fresh", 15, what="the agent to rebuild its cache")
    text = late.log_text()[size:]
    kc.check("cache: root change at seq" in text and "rebuilding the cache from the server" in text, text)
    kc.check(any(n.startswith("agent.db.damaged-") for n in os.listdir(late.dir)), os.listdir(late.dir))


def test_bad_root_changes_are_refused():
    before = C.server_status()
    # Thresholds that no quorum of the two operators can meet (a lockout)
    out, err = C.cli("root", "set-threshold", "register=3", "--operator", "op1", expect=1)
    kc.check("lockout" in err, err)
    # A root that expires when it is made
    out, err = C.cli("root", "renew", "--expires", "0s", "--operator", "op1", expect=1)
    kc.check("expiry is not after its creation time" in err, err)
    # Signed only by a new operator: dave adds himself; no old operator signed
    kc.keyclone("keygen", "dave", "--operator", "--dir", KEYS)
    dave = os.path.join(KEYS, "dave")
    pending = os.path.join(KEYS, "dave.root")
    out, _ = C.cli("root", "add-operator", "dave", "--key", dave, "--operator", dave, "--out", pending)
    kc.check("not submitted" in out and "old operators" in out, out)
    out, err = C.cli("submit", pending, expect=1)
    kc.check("old operators" in err and "threshold 1 not met" in err, err)
    # Signed only by an old operator: op1 removes itself (op2, the one left,
    # did not sign), so the new operators' threshold is not met
    only_old = os.path.join(KEYS, "only-old.root")
    out, _ = C.cli("root", "remove-operator", "op1", "--operator", "op1", "--out", only_old)
    kc.check("not submitted" in out and "new operators" in out, out)
    out, err = C.cli("submit", only_old, expect=1)
    kc.check("new operators" in err, err)
    kc.check(C.server_status()["seq"] == before["seq"], (before, C.server_status()))
    # dave's root cosigned by op1 (an operator of both) is accepted, as v5
    C.cli("cosign", pending, "--operator", "op1", "--root", save_root("v4"))
    out, _ = C.cli("submit", pending)
    kc.check("accepted at seq" in out and "(root v5)" in out, out)
    out, _ = C.cli("submit", pending)
    kc.check("already accepted" in out, out)
    # The other v5 now follows nothing: versions must go up by one
    C.cli("cosign", only_old, "--operator", "op2", "--root", os.path.join(KEYS, "root-v4"))
    out, err = C.cli("submit", only_old, expect=1)
    kc.check("cannot follow v5" in err, err)
    kc.check(C.server_status()["root_version"] == 5, C.server_status())
    C.wait_converged()
    for agent in C.agents:
        kc.check(agent_root(agent) == 5, agent.status())


def test_the_log_is_an_audit_trail():
    out, _ = C.cli("log", "--operator", "op1")
    kc.check(re.search(r"^\d+  \d{4}-\d\d-\d\dT[\d:]+Z  root change to v2, signed by op1; submitted by "
                       r"[0-9A-F]{8}$", out, re.M), out)
    kc.check(re.search(r"root change to v3, signed by op1; .*\n    operator added: carol", out), out)
    kc.check(re.search(r"register, signed by carol; submitted by [0-9A-F]{8}\n  active .* by-carol ", out), out)
    kc.check(re.search(r"root change to v4, signed by op2; .*\n    operator removed: carol", out), out)
    entries = json.loads(C.cli("log", "--name", "by-carol", "--json", "--operator", "op1")[0])
    kc.check(len(entries) == 1 and entries[0]["signed_by"] == ["carol"] and entries[0]["kind"] == "register"
             and entries[0]["records"][0]["name"] == "by-carol", entries)
    everything = json.loads(C.cli("log", "--json", "--operator", "op1")[0])
    v3 = [e["seq"] for e in everything if e["kind"] == "root change to v3"]
    kc.check(len(v3) == 1 and [e["seq"] for e in everything] == list(range(1, len(everything) + 1)), everything)
    since = json.loads(C.cli("log", "--since", str(v3[0]), "--json", "--operator", "op1")[0])
    kc.check(since == everything[v3[0] - 1:], since[:2])
    # A node's agent keeps the same history, read without the server: the
    # first agent synced from 0 (a cold sync), then applied updates
    C.wait_converged()
    for agent in C.agents:
        node = json.loads(kc.keyclone("log", "--json", "--agent", agent.endpoint, "--dir", C.dir)[0])
        kc.check(node == everything, (agent.name, node[:3], everything[:3]))
    # An agent started after all of it holds the history of its cold sync
    fresh = add_agent(name="log-reader")
    C.wait_converged()
    everything = json.loads(C.cli("log", "--json", "--operator", "op1")[0])
    node = json.loads(kc.keyclone("log", "--json", "--agent", fresh.endpoint, "--dir", C.dir)[0])
    kc.check(node == everything and everything[-1]["records"][0]["name"] == "log-reader", node[-2:])
    text = kc.keyclone("log", "--since", str(v3[0]), "--agent", fresh.endpoint, "--dir", C.dir)[0]
    kc.check(text == C.cli("log", "--since", str(v3[0]), "--operator", "op1")[0], text)
    _, err = kc.keyclone("log", "--agent", "ipc:///nonexistent/agent.ipc", "--dir", C.dir, expect=5)
    kc.check("no agent at ipc:///nonexistent/agent.ipc" in err, err)


def test_kill_minus_nine_after_a_root_change_loses_nothing():
    out, _ = C.cli("root", "set-threshold", "revoke=2", "--operator", "op1")
    kc.check("root v6 accepted" in out, out)
    C.stop_server(signal.SIGKILL)
    C.start_server()
    root = root_show()
    kc.check(root["version"] == 6 and root["thresholds"]["revoke"] == 2, root)
    C.wait_converged()
    for agent in C.agents:
        kc.check(agent_root(agent) == 6, agent.status())


def test_rotating_the_head_key_keeps_agents_fresh():
    behind = add_agent(name="behind", options=["--stale-after", "1000"])
    C.wait_converged()
    behind.stop()
    running = [a for a in C.agents if a is not behind]
    sizes = {a.name: len(a.log_text()) for a in running}
    version = root_show()["version"]
    out, _ = C.cli("root", "rotate-head-key", "--operator", "op1")
    kc.check(re.search(r"^server server: head key [0-9A-F]{8} -> [0-9A-F]{8}$", out, re.M)
             and f"root v{version + 1} accepted" in out, out)
    kc.wait_for(lambda: "head key rotated" in C.server_log_text(), 10, what="the server to rotate its head key")
    C.wait_converged(agents=running)
    time.sleep(1.5)                                 # longer than --stale-after
    for agent in running:
        status = agent.status()
        kc.check(status["state"] == "fresh" and status["root_version"] == version + 1, status)
        kc.check("rejected head" not in agent.log_text()[sizes[agent.name]:],
                 agent.log_text()[sizes[agent.name]:])
    # An agent that was stopped through the change catches up and is fresh
    behind.start()
    kc.wait_for(lambda: behind.status() and behind.status()["root_version"] == version + 1
                and behind.status()["state"] == "fresh", 15, what="the stopped agent to catch up")
    # The new key is the server's from now on, across a restart
    C.stop_server()
    C.start_server()
    C.wait_converged()
    time.sleep(1.5)
    for agent in C.agents:
        kc.check(agent.status()["state"] == "fresh", agent.status())


def test_rotating_the_server_key_keeps_agents_connected():
    """The server serves its old CURVE key for the overlap, then switches.
    Running agents follow through the switch without going stale; an agent
    stopped before the change and started during the overlap catches up; one
    started after it with only the old key says the handshake fails, and
    finds the server once the root in force is copied beside its pinned root."""
    behind = add_agent(name="key-behind", options=["--stale-after", "1000"])
    late = C.add_agent(name="key-late", register=False, start=False)
    late_root = os.path.join(late.dir, "root")
    shutil.copy2(os.path.join(C.dir, "root"), late_root)
    late.options = ["--root", late_root]
    C.cli("register", late.name, "--key", late.key, "--operator", "op1")
    late.start()
    C.wait_converged()
    behind.stop()
    late.stop()
    running = [a for a in C.agents if a not in (behind, late)]
    sizes = {a.name: len(a.log_text()) for a in running}
    old_key = key_of(os.path.join(C.dir, "server", "curve"))
    version = root_show()["version"]
    out, _ = C.cli("root", "rotate-server-key", "--overlap", "6s", "--operator", "op1")
    kc.check(re.search(r"^server server: CURVE key [0-9A-F]{8} -> [0-9A-F]{8}$", out, re.M)
             and f"root v{version + 1} accepted" in out, out)
    new_key = key_of(os.path.join(C.dir, "server", "curve-next"))
    kc.wait_for(lambda: "serving the old key until" in C.server_log_text(), 10,
                what="the server to start the overlap")
    # During the overlap: the stopped agent (old key only) catches up, and
    # the CLI (which now knows the new key first) falls back to the old one
    behind.start()
    kc.wait_for(lambda: behind.status() and behind.status()["root_version"] == version + 1
                and behind.status()["state"] == "fresh", 15, what="the stopped agent to catch up")
    kc.check(C.server_status()["seq"] > 0, "the CLI reaches the server during the overlap")
    # A restart during the overlap keeps its end (and the old key until then)
    C.stop_server()
    C.start_server()
    ends = re.findall(r"serving the old key until (\S+), then the new one", C.server_log_text())
    kc.check(len(ends) == 2 and ends[0] == ends[1], ends)
    kc.check("the overlap ended" not in C.server_log_text(), "the overlap ended too soon")
    kc.wait_for(lambda: "the overlap ended; serving with the new key" in C.server_log_text(), 20,
                what="the server to switch keys")
    kc.check(key_of(os.path.join(C.dir, "server", "curve")) == new_key != old_key, new_key)
    C.server_key = new_key                          # for raw requests (submit_raw)
    kc.check(not os.path.exists(os.path.join(C.dir, "server", "curve-next_secret")), "staged key left")
    # Through the switch: every running agent reconnects with the new key,
    # resumes by sequence, and a registration made after it reaches them
    agent = C.add_agent(name="after-key-switch", register=False, start=False)
    C.agents.remove(agent)
    C.cli("register", agent.name, "--key", agent.key, "--operator", "op1")
    running.append(behind)
    C.wait_converged(agents=running)
    time.sleep(1.5)                                 # longer than --stale-after
    for a in running:
        status = a.status()
        kc.check(status["state"] == "fresh" and status["root_version"] == version + 1, status)
        kc.check(a.lookup(agent.key)["status"] == "trusted", a.lookup(agent.key))
        text = a.log_text()[sizes.get(a.name, 0):]
        kc.check("trying" in text and "rejected" not in text and "syncing from seq 0" not in text, text)
    # An agent that knew only the old key: the handshake failure is reported
    late.start()
    kc.wait_for(lambda: "did not complete" in late.log_text(), 15, what="the late agent to report the handshake")
    kc.check(late.status()["root_version"] == version, late.status())
    # A console that never saw the rotation (the genesis root only) is told
    # why at once, not left waiting
    _, err = kc.keyclone("status", "--server", "--root", late_root, "--dir", C.dir, expect=1)
    kc.check("did not complete a CURVE handshake with the server key known" in err, err)
    late.stop()
    shutil.copy2(os.path.join(C.dir, "root.followed"), late_root + ".followed")
    late.start()
    C.wait_converged(agents=[late])
    kc.check(late.status()["root_version"] == version + 1, late.status())
    # The new key is the server's across a restart
    C.stop_server()
    C.start_server()
    C.wait_converged()


def test_refusals_of_the_commands_and_messages():
    """Each refused with its reason, nothing changed."""
    before = C.server_status()
    _, err = C.cli("root", "add-operator", "op2", "--key", os.path.join(KEYS, "carol"), "--operator", "op1",
                   expect=1)
    kc.check("already an operator" in err, err)
    _, err = C.cli("root", "remove-operator", "nobody", "--operator", "op1", expect=1)
    kc.check("no operator named 'nobody'" in err, err)
    _, err = C.cli("root", "frobnicate", expect=2)
    kc.check("unknown subcommand 'frobnicate'" in err, err)
    _, err = C.cli("log", "--since", "0", expect=2)
    kc.check("invalid --since '0'" in err, err)
    # rotate-head-key away from the server's files
    elsewhere = os.path.join(C.root_dir, "elsewhere")
    os.makedirs(os.path.join(elsewhere, "operators"), exist_ok=True)
    for name in ("root", "root.followed", "operators/op1", "operators/op1_secret"):
        shutil.copy2(os.path.join(C.dir, name), os.path.join(elsewhere, name))
    _, err = kc.keyclone("root", "rotate-head-key", "--dir", elsewhere, "--operator", "op1", expect=1)
    kc.check("run it on the server's host" in err, err)
    # a head key the server does not hold: staged in a copy of its files
    os.makedirs(os.path.join(elsewhere, "server"), exist_ok=True)
    shutil.copy2(os.path.join(C.dir, "server", "curve"), os.path.join(elsewhere, "server", "curve"))
    _, err = kc.keyclone("root", "rotate-head-key", "--dir", elsewhere, "--operator", "op1", expect=1)
    kc.check("server refused root" in err and "which signs its heads with" in err, err)
    # a CURVE key the server does not hold (staged in the copy, not beside the server)
    _, err = kc.keyclone("root", "rotate-server-key", "--dir", elsewhere, "--operator", "op1", expect=1)
    kc.check("server refused root" in err and "does not name this server" in err, err)
    kc.check(not os.path.exists(os.path.join(C.dir, "server", "curve-next")), "a key was staged on the server")
    _, err = C.cli("root", "rotate-server-key", "--overlap", "soon", "--operator", "op1", expect=2)
    kc.check("--overlap: invalid duration 'soon'" in err, err)
    # LOG is read like QUERY: refused without a member's key or an operator's
    # signature, malformed when its limit is 0
    reply = submit_raw(C, [b"LOG", (0).to_bytes(8, "big"), (10).to_bytes(4, "big")])
    kc.check(reply and reply[0] == b"ERROR" and reply[1].startswith(b"refused"), reply)
    reply = submit_raw(C, [b"LOG", (0).to_bytes(8, "big"), (0).to_bytes(4, "big")])
    kc.check(reply and reply[0] == b"ERROR" and b"limit of 1..1000" in reply[1], reply)
    # ROOTS is public: every root change, with its seq, in order
    reply = submit_raw(C, [b"ROOTS"])
    seqs = [int.from_bytes(f, "big") for f in reply[1::2]]
    kc.check(reply[0] == b"ROOTS" and len(seqs) == root_show()["version"] - 1 and seqs == sorted(seqs), reply[:3])
    kc.check(C.server_status()["seq"] == before["seq"], (before, C.server_status()))


def test_an_agent_pinned_to_a_later_root_says_it_needs_the_genesis():
    pinned = save_root("later")
    agent = C.add_agent(name="pinned-later", register=False, start=False)
    C.cli("register", agent.name, "--key", agent.key, "--operator", "op1")
    agent.proc = kc.spawn([os.path.join(kc.BIN, "keyclone-agent"), "--dir", agent.dir, "--root", pinned],
                          log=agent.log)
    try:
        kc.wait_for(lambda: "a sync from the start of the log needs the genesis root" in agent.log_text(), 15,
                    what="the agent to say why it cannot sync")
        kc.check(agent.status()["seq"] == 0, agent.status())
    finally:
        agent.stop()
        C.agents.remove(agent)


if __name__ == "__main__":
    kc.main([test_setup, test_renewal_keeps_agents_fresh_past_the_old_expiry,
             test_an_operator_is_added_then_removed, test_a_rogue_server_cannot_use_a_removed_operator,
             test_a_genesis_agent_follows_three_root_changes,
             test_an_altered_root_change_in_a_cache_is_not_trusted, test_bad_root_changes_are_refused,
             test_the_log_is_an_audit_trail, test_kill_minus_nine_after_a_root_change_loses_nothing,
             test_rotating_the_head_key_keeps_agents_fresh,
             test_rotating_the_server_key_keeps_agents_connected, test_refusals_of_the_commands_and_messages,
             test_an_agent_pinned_to_a_later_root_says_it_needs_the_genesis])
