#!/usr/bin/python3
"""Mirrors (docs/mirror.md): keyclone-mirror follows an upstream, verifies
every entry, keeps the log and serves it to agents with the same read
policy; its agents' acknowledgements go upstream. A real keyclone-server
with 3 witnesses (2 needed); mirror m1 follows the server, m2 follows m1
(a tree); agents follow m1, m2, or both (failover). Then: the read policy
at the mirror (a stranger refused, a revoked reader closed), a mirror that
dies, a mirror that refuses what a rogue upstream forges, and rogue mirrors
that forge, sign heads of their own or withhold: agents never trust a key
the operators did not sign, and withholding becomes staleness."""
import os
import re
import shutil
import signal
import time

import zmq

import kc
from cluster import Cluster, free_base_port

STALE = "1000"
C = Cluster(server_options=["--heartbeat", "200"], init_options=["--witnesses", "3"])
T = C.root_dir
KEYS = os.path.join(T, "keys")
mirrors = {}
agents = {}


class Mirror:
    def __init__(self, name, upstream):
        self.name = name
        self.dir = os.path.join(T, "mirrors", name)
        os.makedirs(self.dir)
        shutil.copy(os.path.join(C.dir, "root"), os.path.join(self.dir, "root"))
        self.key = kc.keyclone("keygen", "curve", "--dir", os.path.join(self.dir, "mirror"))[0].strip()
        C.cli("register", f"mirror-{name}", "--key", self.key, "--tag", "role=mirror")
        self.port = free_base_port()
        self.upstream = upstream
        self.log = os.path.join(self.dir, "mirror.log")
        self.proc = None

    def start(self, *extra):
        self.proc = kc.spawn([os.path.join(kc.BIN, "keyclone-mirror"), "--dir", self.dir, "--upstream", self.upstream,
                              "--bind", f"tcp://127.0.0.1:{self.port}", "--stale-after", "1500", *extra], log=self.log)
        return self

    def stop(self, sig=signal.SIGTERM):
        return kc.stop(self.proc, sig)

    def at(self):
        """This mirror as an agent names it in --mirror."""
        return f"tcp://127.0.0.1:{self.port}={self.key}"

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def store_seq(self):
        import sqlite3
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'mirror', 'store.db')}?mode=ro", uri=True)
        try:
            return db.execute("SELECT coalesce (max (seq), 0) FROM batches").fetchone()[0]
        finally:
            db.close()


def fresh_at(agent, seq, timeout=20):
    def ok():
        st = agent.status()
        return st["state"] == "fresh" and st["seq"] == seq
    kc.wait_for(ok, timeout, what=f"{agent.name} fresh at seq {seq}")


def test_setup():
    C.start_server()
    for i in (1, 2, 3):
        C.add_agent(name=f"witness-{i}", options=["--witness", os.path.join(C.dir, "witnesses", f"w{i}_secret"),
                                                  "--stale-after", STALE])
    mirrors["m1"] = Mirror("m1", "server").start()
    mirrors["m2"] = Mirror("m2", mirrors["m1"].at()).start()
    agents["a1"] = C.add_agent(name="a1", options=["--stale-after", STALE, "--mirror", mirrors["m1"].at()])
    agents["a2"] = C.add_agent(name="a2", options=["--stale-after", STALE, "--mirror", mirrors["m2"].at()])
    agents["a3"] = C.add_agent(name="a3", options=["--stale-after", STALE, "--policy", "fail-closed", "--mirror",
                                                   mirrors["m1"].at() + "," + mirrors["m2"].at()])
    seq = C.server_status()["seq"]
    for agent in agents.values():
        fresh_at(agent, seq)


def test_updates_reach_agents_through_mirrors():
    """A registration and a revocation reach the agents behind one and two
    mirrors, fresh (the witnesses' cosignatures relayed); the server's
    status shows every agent behind the mirrors, acknowledged through
    them, and the mirrors themselves."""
    key = kc.keyclone("keygen", "through", "--dir", KEYS)[0].strip()
    C.cli("register", "through", "--key", key)
    C.cli("revoke", "through")
    seq = C.server_status()["seq"]
    for agent in agents.values():
        fresh_at(agent, seq)
        answer = agent.request("NAME", "through")["keys"][0]
        kc.check(answer["status"] == "revoked", f"{agent.name}: {answer}")
        kc.check(agent.status()["witnesses_fresh"] >= 2, agent.status())

    def acknowledged():
        st = C.server_status()
        seen = {a["name"]: a["seq"] for a in st["agents"]}
        return all(seen.get(n) == seq for n in ("a1", "a2", "a3", "mirror-m1", "mirror-m2"))
    kc.wait_for(acknowledged, 10, what="the server to hear every agent behind the mirrors")
    kc.check(mirrors["m2"].store_seq() == seq, "m2 keeps the log")


def test_the_read_policy_at_the_mirror():
    """The mirror serves members only, from its own verified copy: a
    stranger's handshake is refused there; an agent whose key is revoked is
    closed at the mirror and refused when it comes back."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
    s.curve_serverkey = mirrors["m1"].key.encode()
    monitor = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    s.connect(f"tcp://127.0.0.1:{mirrors['m1'].port}")
    kc.check(monitor.poll(5000), "no handshake event")
    from zmq.utils.monitor import recv_monitor_message
    event = recv_monitor_message(monitor)
    kc.check(event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == 400, event)
    s.close()
    kc.wait_for(lambda: "key is not registered" in mirrors["m1"].log_text(), 5, what="the mirror to say why")
    doomed = C.add_agent(name="doomed", options=["--stale-after", STALE, "--mirror", mirrors["m1"].at()])
    fresh_at(doomed, C.server_status()["seq"])
    C.cli("revoke", "doomed")
    kc.wait_for(lambda: "closed" in mirrors["m1"].log_text() and "doomed" in mirrors["m1"].log_text(), 10,
                what="the mirror to close the revoked reader")
    kc.wait_for(lambda: doomed.status()["refused_retry_ms"] > 0, 10, what="the revoked agent refused by the mirror")
    doomed.stop()
    agents_now = C.server_status()["seq"]
    for agent in agents.values():
        fresh_at(agent, agents_now)


def test_a_dead_mirror():
    """m1 killed: a1 (m1 only) goes stale; m2, which follows m1 alone, has
    no head to relay and says so (its agents go stale too). m1 restarted:
    everyone fresh again, nothing lost (what was registered meanwhile
    arrives)."""
    size = len(mirrors["m2"].log_text())
    mirrors["m1"].stop(signal.SIGKILL)
    C.cli("register", "during", "--key", zmq.curve_keypair()[0].decode())
    kc.wait_for(lambda: agents["a1"].status()["state"] == "stale", 10, what="a1 stale without its mirror")
    kc.wait_for(lambda: "no news from" in mirrors["m2"].log_text()[size:], 10, what="m2 to say it is cut off")
    mirrors["m1"].start()
    seq = C.server_status()["seq"]
    for agent in agents.values():
        fresh_at(agent, seq, timeout=30)
        kc.check(agent.request("NAME", "during")["keys"][0]["status"] == "trusted", f"{agent.name} lost 'during'")


def test_failover_between_mirrors():
    """An agent that lists two mirrors moves to the other when its mirror
    stops, and stays up to date."""
    a3 = agents["a3"]
    using = a3.status()["member"]
    victim = next(m for m in mirrors.values() if using.startswith(f"tcp://127.0.0.1:{m.port}"))
    other = next(m for m in mirrors.values() if m is not victim)
    moves = a3.status()["member_moves"]
    if victim.name == "m1":
        # m2 follows m1: with m1 gone it relays nothing; let m2 follow the server too
        mirrors["m2"].stop()
        mirrors["m2"].upstream = mirrors["m1"].at() + ",server"
        mirrors["m2"].start()
    victim.stop(signal.SIGKILL)
    kc.wait_for(lambda: a3.status()["member_moves"] > moves, 20, what="a3 to move to the other mirror")
    C.cli("register", "after-failover", "--key", zmq.curve_keypair()[0].decode())
    seq = C.server_status()["seq"]
    fresh_at(a3, seq, timeout=30)
    kc.check(a3.status()["member"].startswith(f"tcp://127.0.0.1:{other.port}"), a3.status())
    victim.start()
    for agent in agents.values():
        fresh_at(agent, C.server_status()["seq"], timeout=30)


def test_a_mirror_refuses_a_rogue_upstream():
    """A mirror whose upstream forges a batch (a bad operator signature)
    stores nothing of it, says why, and its agents never see the key."""
    m3 = Mirror("m3", "server")
    seq = C.server_status()["seq"]
    C.stop_server()
    proc = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "forged"], log=os.path.join(T, "rogue-upstream.log"))
    try:
        m3.start()
        kc.wait_for(lambda: "bad signature" in m3.log_text(), 20, what="m3 to refuse the forged batch")
        kc.check(m3.store_seq() == seq, f"m3 stored {m3.store_seq()}, the real log is at {seq}")
    finally:
        kc.stop(proc)
        C.start_server()
    kc.wait_for(lambda: m3.store_seq() == C.server_status()["seq"], 30, what="m3 to catch up with the real server")
    m3.stop()


def rogue_mirror(scenario, cosigs=None):
    """kc_rogue serving as a mirror, with a CURVE key of its own that an
    agent is given in --mirror."""
    d = os.path.join(T, f"rogue-{scenario}")
    os.makedirs(d, exist_ok=True)
    key = kc.keyclone("keygen", "curve", "--dir", d)[0].strip()
    port = free_base_port()
    env = dict(os.environ, KC_ROGUE_CURVE=os.path.join(d, "curve_secret"),
               KC_ROGUE_SNAPSHOT=f"tcp://127.0.0.1:{port}", KC_ROGUE_UPDATES=f"tcp://127.0.0.1:{port + 1}")
    if cosigs:
        env["KC_ROGUE_COSIGS"] = cosigs
    log = os.path.join(d, "rogue.log")
    proc = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, scenario], log=log, env=env)
    kc.wait_for(lambda: "serving" in open(log).read(), 10, what="the rogue mirror to serve")
    return proc, f"tcp://127.0.0.1:{port}={key}"


def test_rogue_mirrors():
    """A compromised mirror holds no key that counts: an agent behind one
    that forges a batch refuses it; behind one that signs heads with a key
    of its own, never fresh; behind one that withholds the last entry with
    the server's own old heads and the witnesses' old cosignatures, stale
    within its window. None of them trusts a key the operators did not
    register."""
    victim_key = kc.keyclone("keygen", "hidden-victim", "--dir", KEYS)[0].strip()
    C.cli("register", "hidden-victim", "--key", victim_key)
    C.wait_converged(agents=[a for a in C.agents if a.proc and a.proc.poll() is None])
    for scenario, expect in (("forged", "bad signature"), ("bad-head", "head signature does not verify")):
        proc, at = rogue_mirror(scenario)
        agent = C.add_agent(name=f"behind-{scenario}", options=["--stale-after", STALE, "--mirror", at])
        try:
            kc.wait_for(lambda: expect in agent.log_text(), 20, what=f"the agent to refuse ({scenario})")
            time.sleep(1.5)
            st = agent.status()
            kc.check(st["state"] != "fresh", f"fresh behind a rogue mirror ({scenario}): {st}")
            # what kc_rogue forges registers a key named "forged"
            kc.check(agent.request("NAME", "forged")["keys"] == [], "the agent trusts the forged key")
        finally:
            kc.stop(proc)
            agent.stop()
    # Withholding: the server's revocation of hidden-victim never reaches the
    # agent; with the witnesses' cosignatures from before it, it goes stale
    agent = C.add_agent(name="behind-withhold", options=["--stale-after", STALE, "--policy", "fail-closed"])
    fresh_at(agent, C.server_status()["seq"])
    agent.stop()
    C.cli("revoke", "hidden-victim")
    C.wait_converged(agents=[a for a in C.agents if a.proc and a.proc.poll() is None])
    proc, at = rogue_mirror("withhold")
    agent.options = ["--stale-after", STALE, "--policy", "fail-closed", "--mirror", at]
    agent.start()
    try:
        kc.wait_for(lambda: agent.status()["state"] == "stale", 10, what="the agent behind the withholding mirror stale")
        answer = agent.request("NAME", "hidden-victim")["keys"][0]
        kc.check(answer["status"] != "trusted", f"the withheld revocation went unnoticed: {answer}")
    finally:
        kc.stop(proc)
        agent.stop()


def test_a_mirror_of_a_cluster():
    """A mirror that follows a cluster's members by name (a, b, c) moves
    to another member when the one it follows is killed, and its agent
    stays up to date: registrations made through the new leader arrive. An
    agent that joins it then syncs from 0 and takes the END's head, signed
    by the member the mirror follows now."""
    from cluster import Members
    M = Members(server_options=["--heartbeat", "200"])
    M.start_all()
    d = os.path.join(M.root_dir, "mirror")
    os.makedirs(d)
    shutil.copy(os.path.join(M.dir, "root"), os.path.join(d, "root"))
    key = kc.keyclone("keygen", "curve", "--dir", os.path.join(d, "mirror"))[0].strip()
    M.cli("register", "cluster-mirror", "--key", key)
    M.wait_same()                           # on every member: a member refuses a key it has not applied
    port = free_base_port()
    log = os.path.join(d, "mirror.log")
    mirror = kc.spawn([os.path.join(kc.BIN, "keyclone-mirror"), "--dir", d, "--upstream", "a,b,c",
                       "--bind", f"tcp://127.0.0.1:{port}", "--stale-after", "2000"], log=log)
    agent = M.add_agent(name="behind", options=["--stale-after", "3000", "--mirror", f"tcp://127.0.0.1:{port}={key}"])
    try:
        M.wait_same()                       # the agent's own registration on every member
        seq = M.status("b")["seq"]
        fresh_at(agent, seq)
        moved = [line for line in open(log) if "following" in line or "no news" in line]
        kc.check(not moved, f"the mirror moved before anything failed: {moved}\n" + open(log).read()[-3000:])
        M.stop("a", signal.SIGKILL)
        kc.wait_for(lambda: "following b now" in open(log).read() or "following c now" in open(log).read(), 20,
                    what="the mirror to follow another member")
        M.cli("register", "after-a", "--key", zmq.curve_keypair()[0].decode())
        seq = max(M.status(n)["seq"] for n in ("b", "c"))
        fresh_at(agent, seq, timeout=30)
        kc.check(agent.request("NAME", "after-a")["keys"][0]["status"] == "trusted", "the registration arrived")
        # An agent that joins behind the mirror now syncs from 0: the END of
        # its sync carries a head signed by the member the mirror follows,
        # not by the root's first server, and it is taken
        late = M.add_agent(name="behind-late", options=["--stale-after", "3000",
                                                        "--mirror", f"tcp://127.0.0.1:{port}={key}"])
        seq = max(M.status(n)["seq"] for n in ("b", "c"))
        fresh_at(late, seq, timeout=30)
        kc.check("END head" not in late.log_text(), late.log_text()[-2000:])
    finally:
        kc.stop(mirror)
        for a in M.agents:
            a.stop()
        for name in list(M.procs):
            M.stop(name)


def test_what_cannot_be_done_says_why():
    """A mirror or a witness started wrong says why in one line and exits:
    an upstream the root does not name, a mirror upstream with a bad key,
    no --bind, a --stale-after out of range; a mirror's key registered
    nowhere is refused by its upstream (said in its log, and it keeps
    running and trying)."""
    d = os.path.join(T, "wrong")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(C.dir, "root"), os.path.join(d, "root"))
    kc.keyclone("keygen", "curve", "--dir", os.path.join(d, "mirror"))
    kc.keyclone("keygen", "curve", "--dir", os.path.join(d, "witness"))
    mirror = os.path.join(kc.BIN, "keyclone-mirror")
    witness = os.path.join(kc.BIN, "keyclone-witness")
    bind = f"tcp://127.0.0.1:{free_base_port()}"
    cases = [
        ([mirror, "--dir", d, "--upstream", "nosuch", "--bind", bind], 1, "upstream 'nosuch' is no server of root v"),
        ([mirror, "--dir", d, "--upstream", "tcp://h:1=short", "--bind", bind], 1, "is not NAME or tcp://HOST:PORT=KEY"),
        ([mirror, "--dir", d, "--upstream", "serv\x1b[31mer", "--bind", bind], 1,
         "upstream 'serv\\x1b[31mer' holds a space or a control character"),
        ([mirror, "--dir", d, "--upstream", "server"], 2, "--bind tcp://HOST:PORT are required"),
        ([mirror, "--dir", d, "--upstream", "server", "--bind", bind, "--stale-after", "5"], 2, "--stale-after must be"),
        ([witness, "--dir", d, "--upstream", "nosuch", "--witness", os.path.join(C.dir, "witnesses", "w1_secret")], 1,
         "upstream 'nosuch' is no server of root v"),
        ([witness, "--dir", d, "--upstream", "server", "--witness", os.path.join(d, "missing")], 1, "missing"),
    ]
    for args, status, reason in cases:
        out, err = kc.run(args, expect=status, timeout=30)
        kc.check(reason in out + err, f"{args}: {out + err}")
    # Not registered upstream: refused there, said here, still running;
    # registered, it connects again by itself and follows
    log = os.path.join(d, "mirror.log")
    key = open(os.path.join(d, "mirror", "curve")).read()
    proc = kc.spawn([mirror, "--dir", d, "--upstream", "server", "--bind", bind, "--stale-after", "1000"], log=log)
    try:
        kc.wait_for(lambda: "key is not registered" in C.server_log_text() and proc.poll() is None, 10,
                    what="the server to refuse the unregistered mirror")
        kc.wait_for(lambda: "connecting to it again" in open(log).read(), 10, what="the mirror to say it tries again")
        kc.check(proc.poll() is None, "the mirror exited")
        public = re.search(r'public-key = "(.{40})"', key).group(1)
        C.cli("register", "late-mirror", "--key", public)
        import sqlite3
        def synced():
            db = sqlite3.connect(f"file:{os.path.join(d, 'mirror', 'store.db')}?mode=ro", uri=True)
            try:
                return db.execute("SELECT coalesce (max (seq), 0) FROM batches").fetchone()[0] == C.server_status()["seq"]
            finally:
                db.close()
        kc.wait_for(synced, 20, what="the mirror, registered, to follow the log")
    finally:
        kc.stop(proc)


if __name__ == "__main__":
    kc.main([test_setup, test_updates_reach_agents_through_mirrors, test_the_read_policy_at_the_mirror,
             test_a_dead_mirror, test_failover_between_mirrors, test_a_mirror_refuses_a_rogue_upstream,
             test_rogue_mirrors, test_a_mirror_of_a_cluster, test_what_cannot_be_done_says_why])
