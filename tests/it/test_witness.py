#!/usr/bin/python3
"""Witnesses (docs/protocol.md 9): a server that holds its own keys can sign
fresh heads for any log it likes, but it cannot make the root's witnesses
cosign a log they have not seen. A root with 3 witnesses and a threshold of
2; three witness agents (keyclone-agent --witness) and two ordinary agents,
all with stale-after 1 s, against a real keyclone-server; kc_rogue plays the
compromised server (it holds the server's keys, and replays the witnesses'
latest cosignatures from before what it hides).

- T4, withholding: the log without its last batch (a revocation) with fresh
  heads: the victim agent goes stale and, fail-closed, refuses;
- T6, split view: two agents shown two different histories at one seq,
  both operator-signed and chained: both go stale;
- a witness never cosigns a rollback or a fork; a fork's two signed heads
  are a proof of equivocation, kept across a restart, reported in status
  and the event stream, and the server refused;
- an honest server with one witness down keeps every agent fresh;
- the server refuses cosignatures that are forged, by a non-witness, or
  that name a chain its log does not hold.
"""
import json
import os
import shutil
import signal
import time

import zmq

import kc
from cluster import Cluster, Members, free_base_port

STALE = "1000"
C = Cluster(server_options=["--heartbeat", "200"], init_options=["--witnesses", "3"])
T = C.root_dir
KEYS = os.path.join(T, "keys")
WITNESS_KEYS = os.path.join(C.dir, "witnesses")
witnesses = []
hidden = seen = None


def updates_endpoint():
    return C.submit_endpoint.rsplit(":", 1)[0] + f":{C.base + 1}"


def capture_cosigs(path, count=2):
    """The cosignatures the real server publishes with its heads now (what a
    compromised server could replay later), written to path."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    public, s.curve_secretkey = zmq.curve_keypair()
    s.curve_publickey = public
    # The server serves its channels to registered keys only (read = members)
    C.cli("register", f"listener-{os.path.basename(path)}", "--key", public.decode())
    s.curve_serverkey = C.server_key.encode()
    s.setsockopt(zmq.SUBSCRIBE, b"HEAD")
    s.connect(updates_endpoint())
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if s.poll(1000):
                frames = s.recv_multipart()
                if len(frames) >= 2 + count:
                    with open(path, "wb") as f:
                        f.write(b"".join(frames[2:]))
                    return len(frames) - 2
        raise AssertionError("no HEAD with cosignatures from the server")
    finally:
        s.close()


def rogue(scenario, *args, cosigs=None, name=None):
    env = dict(os.environ, KC_ROGUE_COSIGS=cosigs) if cosigs else None
    log = os.path.join(T, f"rogue-{name or scenario}.log")
    proc = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, scenario, *args], log=log, env=env)
    kc.wait_for(lambda: "serving" in open(log).read(), 10, what="kc_rogue to serve")
    return proc, log


def status_text(agent):
    """The agent's STATUS as a person reads it (the reply's text frame)."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(agent.endpoint)
    s.send(b"STATUS")
    frames = s.recv_multipart() if s.poll(5000) else []
    s.close()
    return frames[-1].decode() if len(frames) >= 3 else ""


def all_fresh(agents, seq=None):
    def fresh():
        for agent in agents:
            st = agent.status()
            if st["state"] != "fresh" or (seq is not None and st["seq"] != seq):
                return False
        return True
    kc.wait_for(fresh, 20, what="every agent fresh" + (f" at seq {seq}" if seq else ""))


def test_setup():
    C.start_server()
    for i in (1, 2, 3):
        witnesses.append(C.add_agent(name=f"witness-{i}", options=[
            "--witness", os.path.join(WITNESS_KEYS, f"w{i}_secret"), "--stale-after", STALE]))
    global hidden, seen
    hidden = C.add_agent(name="hidden", options=["--stale-after", STALE, "--policy", "fail-closed"])
    seen = C.add_agent(name="seen", options=["--stale-after", STALE])
    C.cli("register", "victim", "--key", kc.keyclone("keygen", "victim", "--dir", KEYS)[0].strip())
    C.wait_converged()
    all_fresh(C.agents)
    status = C.server_status()
    kc.check(status["witness_threshold"] == 2 and len(status["witnesses"]) == 3, status)
    kc.wait_for(lambda: all(w["cosigned"] and w["seq"] == C.server_status()["seq"]
                            for w in C.server_status()["witnesses"]), 10, what="three witnesses cosigning")
    for witness in witnesses:
        st = witness.status()
        kc.check(st["witness"]["cosigned"] > 0 and st["witness"]["cosigned_seq"] == status["seq"], st)
    st = seen.status()
    kc.check(st["witnesses_fresh"] >= 2 and not st["witness_short"] and st["cosignatures"] > 0, st)


def test_one_witness_down_stays_fresh():
    """An honest server with one witness of three down: 2 of 3 still vouch,
    no agent is ever seen stale (polled every 100 ms for 3 windows), and a
    registration made meanwhile reaches them fresh."""
    witnesses[0].stop()
    try:
        deadline = time.monotonic() + 3
        C.cli("register", "while-one-down", "--key", zmq.curve_keypair()[0].decode())
        while time.monotonic() < deadline:
            for agent in (hidden, seen):
                st = agent.status()
                kc.check(st["state"] != "stale", f"{agent.name} went stale with 2 of 3 witnesses up: {st}")
            time.sleep(0.1)
        all_fresh([hidden, seen], C.server_status()["seq"])
    finally:
        witnesses[0].start()
    C.wait_converged()
    all_fresh(C.agents)


def test_two_witnesses_down_go_stale():
    """Below the threshold, even an honest server cannot keep agents fresh:
    the agent says which witnesses are missing, and fail-closed refuses."""
    victim_key = kc.keyclone("keygen", "w-victim", "--dir", KEYS)[0].strip()
    C.cli("register", "w-victim", "--key", victim_key)
    C.wait_converged()
    for witness in witnesses[:2]:
        witness.stop()
    try:
        kc.wait_for(lambda: hidden.status()["state"] == "stale", 10, what="the agent stale with one witness")
        st = hidden.status()
        kc.check(st["witness_short"] and st["witnesses_fresh"] <= 1, st)
        kc.check("witnesses: " in status_text(hidden), "status text names the witnesses")
        kc.check(hidden.request("NAME", "w-victim")["keys"][0]["status"] == "stale",
                 hidden.request("NAME", "w-victim"))
    finally:
        for witness in witnesses[:2]:
            witness.start()
    all_fresh(C.agents)


def test_withholding_a_revocation():
    """T4: the rogue serves the real log without its last batch (the
    revocation of victim) with fresh heads and the witnesses' last
    cosignatures from before it: the hidden agent, fail-closed, goes stale
    within its window and refuses victim; the witnesses, which saw the
    revocation, never cosign the shorter log."""
    cosigs = os.path.join(T, "cosigs-before-revocation")
    capture_cosigs(cosigs)
    C.wait_converged()
    hidden.stop()
    C.cli("revoke", "victim")
    C.wait_converged(agents=[seen] + witnesses)
    seq = C.server_status()["seq"]
    kc.check(seen.request("NAME", "victim")["keys"][0]["status"] == "revoked", seen.request("NAME", "victim"))
    C.stop_server()
    proc, log = rogue("withhold", cosigs=cosigs)
    try:
        hidden.start()
        kc.wait_for(lambda: hidden.status()["seq"] == seq - 1, 10, what="the hidden agent to sync the shorter log")
        kc.wait_for(lambda: hidden.status()["state"] == "stale", 10, what="the hidden agent to go stale")
        st = hidden.status()
        kc.check(st["witness_short"], f"stale for another reason: {st}")
        answer = hidden.request("NAME", "victim")["keys"][0]
        kc.check(answer["status"] != "trusted", f"the withheld revocation went unnoticed: {answer}")
        # The witnesses saw seq {seq}: the rogue's heads are behind them
        for witness in witnesses:
            # It sees the rogue's heads once its SUB has connected again
            kc.wait_for(lambda: witness.status()["state"] == "stale", 10, what=f"{witness.name} to see the shorter log")
            st = witness.status()
            kc.check(st["witness"]["cosigned_seq"] == seq, st)
        kc.check(f"for seq {seq - 1}" not in open(log).read(), "a witness cosigned the shorter log")
        kc.check("behind this cache" in witnesses[0].log_text(), "the witness says the server is behind")
    finally:
        kc.stop(proc)
        C.start_server()
    C.wait_converged()
    all_fresh(C.agents)
    kc.check(hidden.request("NAME", "victim")["keys"][0]["status"] == "revoked", "caught up with the revocation")


def test_a_rebuilt_witness_never_cosigns_below_what_it_cosigned():
    """A witness whose copy is lost (its cache deleted while stopped)
    starts again from what a rogue shows it: the log without its last
    entry, with fresh heads. Its copy then ends where the heads say, but
    it cosigned the longer log before: it refuses, says so, and sends
    nothing."""
    witness = witnesses[2]
    C.wait_converged()
    seq = C.server_status()["seq"]
    witness.stop()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(witness.cache + suffix):
            os.unlink(witness.cache + suffix)
    C.stop_server()
    proc, log = rogue("withhold", name="withhold-floor")
    try:
        witness.start()
        kc.wait_for(lambda: witness.status()["seq"] == seq - 1, 10, what="the new copy at the rogue's seq")
        kc.wait_for(lambda: witness.status()["witness"]["refusals"] > 0, 10, what="the witness to refuse")
        st = witness.status()
        kc.check(st["witness"]["cosigned_seq"] == seq and st["witness"]["cosigned"] == 0, st)
        kc.check(f"not cosigning seq {seq - 1}: this witness cosigned seq {seq} before" in witness.log_text(),
                 witness.log_text()[-2000:])
        kc.check("cosign from" not in open(log).read(), "the witness cosigned the shorter log")
    finally:
        kc.stop(proc)
        C.start_server()
    C.wait_converged()
    all_fresh(C.agents)
    kc.wait_for(lambda: witness.status()["witness"]["cosigned"] > 0, 10, what="the witness cosigning again")


def test_a_split_view():
    """T6: two rogues show two agents two different next batches (both
    operator-signed, correctly chained) at the same seq, replaying the
    witnesses' last cosignatures: neither agent stays fresh."""
    first, second = hidden, seen
    cosigs = os.path.join(T, "cosigs-before-split")
    capture_cosigs(cosigs)
    C.wait_converged()
    seq = C.server_status()["seq"]
    batches = []
    for n in range(2):
        path = os.path.join(T, f"split-{n}.kcb")
        C.cli("sign", "--register", f"split-{n}={zmq.curve_keypair()[0].decode()}", "--out", path)
        batches.append(path)
    C.stop_server()
    rogues = []
    saved = [agent.options for agent in (first, second)]
    for agent, batch in zip((first, second), batches):
        base = free_base_port()
        endpoints = [f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}"]
        rogues.append(rogue("extend", batch, *endpoints, cosigs=cosigs, name=agent.name)[0])
        agent.stop()
        agent.options = saved[0 if agent is first else 1] + ["--server-snapshot", endpoints[0],
                                                              "--server-updates", endpoints[1]]
        agent.start()
    try:
        for agent in (first, second):
            kc.wait_for(lambda: agent.status()["seq"] == seq + 1, 10,
                        what=f"{agent.name} to take the rogue's batch")
        for agent in (first, second):
            kc.wait_for(lambda: agent.status()["state"] == "stale", 10, what=f"{agent.name} stale")
        a, b = first.status(), second.status()
        kc.check(a["seq"] == b["seq"] and a["chain"] != b["chain"], "two histories at one seq")
        kc.check(a["witness_short"] and b["witness_short"], f"{a}\n{b}")
    finally:
        for proc in rogues:
            kc.stop(proc)
        for agent, options in zip((first, second), saved):
            agent.stop()
            agent.options = options


def test_split_agents_come_back():
    """After the split, the two agents hold batches the real log lacks:
    the honest server's heads are behind them; they are rebuilt by hand
    (as an operator would) and sync again."""
    C.start_server()
    for agent in (hidden, seen):
        for suffix in ("", "-wal", "-shm"):
            path = agent.cache + suffix
            if os.path.exists(path):
                os.unlink(path)
        agent.start()
    C.wait_converged()
    all_fresh(C.agents)


def test_server_refuses_bad_cosignatures():
    """A cosignature forged, by a key the root does not name, or naming a
    chain the log does not hold (a fork), is refused by the server (counted,
    logged with the reason) and never published; one beyond the log is set
    aside without a word."""
    st = C.server_status()
    directory, seq, chain = st["directory"], st["seq"], st["chain"]
    forge = os.path.join(kc.TESTS, "kc_forge")
    kc.keyclone("keygen", "stranger", "--witness", "--dir", KEYS)
    w1 = os.path.join(WITNESS_KEYS, "w1")
    now = str(int(time.time() * 1000))
    cases = [("stranger", os.path.join(KEYS, "stranger"), seq, chain, "not a witness"),
             ("fork", w1, seq, "ab" * 32, "another chain"),
             ("forged", w1, seq, chain, "does not verify")]
    for name, key, cseq, cchain, reason in cases:
        out = os.path.join(T, f"cosig-{name}")
        kc.run([forge, "cosig", key, directory, str(cseq), cchain, now, out])
        data = bytearray(open(out, "rb").read())
        if name == "forged":
            data[-1] ^= 1                   # w1's own cosignature, one bit flipped
        # Each from a registered reader of its own (read = members; the
        # server logs a few refusals per peer, then sums them up)
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        public, s.curve_secretkey = zmq.curve_keypair()
        s.curve_publickey = public
        s.curve_serverkey = C.server_key.encode()
        C.cli("register", f"cosigner-{name}", "--key", public.decode())
        s.connect(C.submit_endpoint.rsplit(":", 1)[0] + f":{C.base}")
        before = C.server_status()["cosignatures_refused"]
        s.send_multipart([b"COSIGN", bytes(data)])
        kc.wait_for(lambda: C.server_status()["cosignatures_refused"] > before, 10,
                    what=f"the server to refuse the {name} cosignature")
        kc.wait_for(lambda: reason in C.server_log_text(), 5, what=f"'{reason}' in the server's log")
        s.close()
    # One beyond the log is not an offence (a member a little behind the
    # one the witness follows), only not kept, and said nowhere
    out = os.path.join(T, "cosig-beyond")
    kc.run([forge, "cosig", w1, directory, str(seq + 1000), chain, now, out])
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    public, s.curve_secretkey = zmq.curve_keypair()
    s.curve_publickey = public
    s.curve_serverkey = C.server_key.encode()
    C.cli("register", "cosigner-beyond", "--key", public.decode())
    s.connect(C.submit_endpoint.rsplit(":", 1)[0] + f":{C.base}")
    before = C.server_status()
    s.send_multipart([b"COSIGN", open(out, "rb").read()])
    kc.wait_for(lambda: C.server_status()["cosignatures_ahead"] > before["cosignatures_ahead"], 10,
                what="the server to set aside the cosignature ahead of its log")
    kc.check(C.server_status()["cosignatures_refused"] == before["cosignatures_refused"], C.server_status())
    kc.check("beyond this server's log" not in C.server_log_text(), "an ordinary lag was logged as a refusal")
    s.close()
    # None of them reached an agent: no refused or forked cosignature there
    C.wait_converged()
    st = seen.status()
    kc.check(st["cosignatures_refused"] == 0 and st["cosignatures_forked"] == 0, st)
    all_fresh(C.agents)


def test_a_fork_is_a_proof():
    """A head validly signed for the witness's own seq with another chain
    (the rogue's forked-head): never cosigned; the witness and the agents
    keep the two heads as a proof of equivocation, say so in status and the
    event stream, refuse that server, and still refuse it after a restart."""
    seq = C.server_status()["seq"]
    ctx = zmq.Context.instance()
    events = ctx.socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"")
    events.connect(seen.events)
    time.sleep(0.3)
    C.stop_server()
    proc, log = rogue("forked-head")
    try:
        for agent in witnesses + [seen]:
            kc.wait_for(lambda: agent.status()["equivocations"] >= 1, 10, what=f"{agent.name} to keep a proof")
            st = agent.status()
            kc.check(st["state"] == "stale" and st["equivocation"]["server"] == "server"
                     and st["equivocation"]["seq"] == seq, st)
            kc.check(st["equivocation"]["head_a"] != st["equivocation"]["head_b"], st)
        kc.check("cosign from" not in open(log).read(), "a witness cosigned the forked head")
        found = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not found:
            if events.poll(500):
                frames = events.recv_multipart()
                found = frames[0] == b"equivocation" and json.loads(frames[1])["name"] == "server"
        kc.check(found, "no equivocation event")
        kc.check("EQUIVOCATION" in status_text(seen), "status text says it")
    finally:
        kc.stop(proc)
        events.close()
    # Restarted against the real server: the proof is loaded, the server refused
    C.start_server()
    seen.stop()
    seen.start()
    kc.wait_for(lambda: "refusing server" in seen.log_text(), 10, what="the restarted agent to refuse the server")
    st = seen.status()
    kc.check(st["equivocations"] >= 1 and st["state"] != "fresh", st)
    # The operator's way back: the proof file removed (after dealing with
    # the compromised server), a restart
    for agent in C.agents:
        if os.path.exists(agent.cache + ".equivocation"):
            agent.stop()
            os.unlink(agent.cache + ".equivocation")
            agent.start()
    C.wait_converged()
    all_fresh(C.agents)


def test_a_bad_proof_is_refused():
    """PROOF on the local service takes two heads an application found in
    conflict (test_heads_in_the_handshake); what is no proof (not heads,
    the same head twice, one signed by no server of the root) is refused
    with the reason, and changes nothing."""
    st = hidden.status()
    head = bytes.fromhex(seen.status()["equivocation"]["head_a"]) if seen.status().get("equivocation") else None
    db_head = head_bytes(seen.cache)
    forged = bytearray(db_head)
    forged[50] ^= 1                         # another chain, the signature now wrong
    for name, argument, reason in (("zeros", b"\x00" * 314, "bad magic"), ("short", b"KCHD", "PROOF"),
                                   ("the same head twice", db_head + db_head, "the same chain"),
                                   ("a forged head", db_head + bytes(forged), "not both signed")):
        try:
            hidden.request("PROOF", argument)
            raise AssertionError(f"PROOF of {name} accepted")
        except RuntimeError as e:
            kc.check(reason in str(e), f"{name}: {e}")
    kc.check(hidden.status()["equivocations"] == st["equivocations"], "a non-proof changed nothing")
    kc.check(hidden.status()["state"] == "fresh", hidden.status())
    kc.check(head is None, "seen kept no proof since the operator removed it")


def test_witnesses_change_with_the_root():
    """Witnesses are named by root changes like operators: w4 added (its
    cosignatures refused until then), the threshold raised to 3, w1
    removed (its cosignatures no longer count anywhere); with w2 then down,
    2 of {w2, w3, w4} is below 3 and agents go stale; the threshold set
    back to 2 makes them fresh. What cannot be done says why."""
    kc.keyclone("keygen", "w4", "--witness", "--dir", KEYS)
    w4 = C.add_agent(name="witness-4", options=["--witness", os.path.join(KEYS, "w4_secret"), "--stale-after", STALE])
    kc.wait_for(lambda: "is not a witness of root" in w4.log_text(), 10, what="w4 to say it is not a witness yet")
    kc.wait_for(lambda: "not a witness" in C.server_log_text(), 10, what="the server to refuse w4's cosignature")
    C.cli("root", "add-witness", "w4", "--key", os.path.join(KEYS, "w4"))
    C.cli("root", "set-threshold", "witness=3")
    out, err = C.cli("root", "remove-witness", "nobody", expect=1)
    kc.check("no witness named 'nobody'" in out + err, out + err)
    out, err = C.cli("root", "set-threshold", "witness=5", expect=1)
    kc.check("above the 4 witnesses" in out + err, out + err)
    C.cli("root", "remove-witness", "w1")
    C.wait_converged()
    all_fresh([hidden, seen])
    status = C.server_status()
    names = sorted(w["name"] for w in status["witnesses"])
    kc.check(names == ["w2", "w3", "w4"] and status["witness_threshold"] == 3, status)
    kc.wait_for(lambda: all(w["cosigned"] for w in C.server_status()["witnesses"]), 10,
                what="w2, w3 and w4 cosigning")
    kc.check(len(seen.status()["witnesses"]) == 3, seen.status())
    witnesses[1].stop()                     # w2: 2 of 3 needed are left
    try:
        kc.wait_for(lambda: seen.status()["state"] == "stale", 10, what="stale below the new threshold")
        kc.check(seen.status()["witness_short"], seen.status())
        C.cli("root", "set-threshold", "witness=2")
        C.wait_converged(agents=[hidden, seen])
        all_fresh([hidden, seen])
    finally:
        witnesses[1].start()


def test_the_witness_daemon():
    """keyclone-witness (a copy in a store of its own, no agent) stands in
    for witness-3: with witness-1 down too, agents are fresh on w2 and the
    daemon's cosignatures; shown a shorter log by a rogue server, the
    daemon says so and cosigns nothing of it."""
    d = os.path.join(T, "witnessd")
    os.makedirs(d)
    shutil.copy(os.path.join(C.dir, "root"), os.path.join(d, "root"))
    key = kc.keyclone("keygen", "curve", "--dir", os.path.join(d, "witness"))[0].strip()
    C.cli("register", "witness-daemon", "--key", key)
    log = os.path.join(d, "witness.log")
    daemon = kc.spawn([os.path.join(kc.BIN, "keyclone-witness"), "--dir", d, "--upstream", "server",
                       "--witness", os.path.join(WITNESS_KEYS, "w3_secret"), "--stale-after", "2000"], log=log)
    witnesses[0].stop()
    witnesses[2].stop()
    try:
        C.cli("register", "seen-by-the-daemon", "--key", zmq.curve_keypair()[0].decode())
        seq = C.server_status()["seq"]
        C.wait_converged(agents=[hidden, seen, witnesses[1]])
        all_fresh([hidden, seen], seq)
        kc.wait_for(lambda: any(w["name"] == "w3" and w["seq"] == seq for w in C.server_status()["witnesses"]), 10,
                    what="the daemon's cosignature at the server")
        C.stop_server()
        proc, rogue_log = rogue("withhold", name="withhold-daemon")
        try:
            kc.wait_for(lambda: f"log ends at seq {seq - 1}, behind this copy (seq {seq}): not news"
                        in open(log).read(), 10, what="the daemon to refuse the shorter log")
            kc.check("cosign from" not in open(rogue_log).read(), "a witness cosigned the shorter log")
        finally:
            kc.stop(proc)
            C.start_server()
    finally:
        kc.stop(daemon)
        witnesses[0].start()
        witnesses[2].start()
    kc.check("cosignatures sent" in open(log).read(), "the daemon says what it did at the end")
    C.wait_converged()
    all_fresh(C.agents)


def test_heads_in_the_handshake():
    """Without witnesses (another directory), a split view makes both
    agents fresh at one seq with two chains. Two kc_curve peers, each
    reading its own agent's cache, send their heads in the handshake's
    metadata: the server side finds the conflict, reports the proof to its
    agent (which keeps it and refuses the server) and, fail-closed, denies;
    the client side finds it in READY and refuses too."""
    D = Cluster(server_options=["--heartbeat", "200"])
    D.start_server()
    a = D.add_agent(name="peer-a", options=["--stale-after", "2000"])
    b = D.add_agent(name="peer-b", options=["--stale-after", "2000"])
    D.wait_converged()
    seq = D.server_status()["seq"]
    batches = []
    for n in range(2):
        path = os.path.join(D.root_dir, f"split-{n}.kcb")
        D.cli("sign", "--register", f"split-{n}={zmq.curve_keypair()[0].decode()}", "--out", path)
        batches.append(path)
    D.stop_server()
    rogues = []
    for agent, batch in zip((a, b), batches):
        base = free_base_port()
        endpoints = [f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}"]
        log = os.path.join(D.root_dir, f"rogue-{agent.name}.log")
        rogues.append(kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), D.dir, "extend", batch, *endpoints], log=log))
        agent.stop()
        agent.options = ["--stale-after", "2000", "--server-snapshot", endpoints[0], "--server-updates", endpoints[1]]
        agent.start()
    try:
        for agent in (a, b):
            kc.wait_for(lambda: agent.status()["seq"] == seq + 1 and agent.status()["state"] == "fresh", 10,
                        what=f"{agent.name} fresh on its rogue's history")
        kc.check(a.status()["chain"] != b.status()["chain"], "the two agents hold one history")
        # The head goes to the cache at most once a second after a new seq
        for agent in (a, b):
            kc.wait_for(lambda: head_seq(agent.cache) == seq + 1, 10, what=f"{agent.name}'s head stored")
        port = kc.free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        app_log = os.path.join(D.root_dir, "app-a.log")
        app = kc.spawn([os.path.join(kc.TESTS, "kc_zap_server"), "--codec", "--cert", os.path.join(a.dir, "node_secret"),
                        "--cache", a.cache, "--bind", endpoint, "--agent", a.endpoint, "--fail-closed"], log=app_log)
        kc.wait_for(lambda: "ready" in open(app_log).read(), 10, what="the application to serve")
        a_key = kc.run(["/usr/bin/python3", "-c", "import zmq.auth,sys; print(zmq.auth.load_certificate(sys.argv[1])[0].decode())",
                        os.path.join(a.dir, "node")])[0].strip()
        out, _ = kc.run([os.path.join(kc.TESTS, "kc_zap_client"), "--codec", "--key", os.path.join(b.dir, "node_secret"),
                         "--server-key", a_key, "--connect", endpoint, "--cache", b.cache], expect=3)
        kc.check("denied" in out, out)
        kc.wait_for(lambda: "another chain at seq" in open(app_log).read(), 5, what="the application to say why")
        st = a.status()
        kc.check(st["equivocations"] == 1 and st["equivocation"]["seq"] == seq + 1 and st["state"] == "stale", st)
        kc.check("reported by an application" in a.log_text(), "the agent says where the proof came from")
        kc.stop(app)
        # Without fail-closed the server side lets the client in, and the
        # client, which checks the server's head in READY, refuses itself
        app = kc.spawn([os.path.join(kc.TESTS, "kc_zap_server"), "--codec", "--cert", os.path.join(a.dir, "node_secret"),
                        "--cache", a.cache, "--bind", endpoint], log=app_log)
        kc.wait_for(lambda: open(app_log).read().count("ready") == 2, 10, what="the application to serve again")
        out, _ = kc.run([os.path.join(kc.TESTS, "kc_zap_client"), "--codec", "--key", os.path.join(b.dir, "node_secret"),
                         "--server-key", a_key, "--connect", endpoint, "--cache", b.cache], expect=5)
        kc.check("conflict: the peer's head names another chain" in out, out)
        # A client with no cache sends no head: nothing to compare, let in
        out, _ = kc.run([os.path.join(kc.TESTS, "kc_zap_client"), "--codec", "--key", os.path.join(b.dir, "node_secret"),
                         "--server-key", a_key, "--connect", endpoint])
        kc.check("reply: echo:hello|peer-b" in out, out)
        kc.stop(app)
    finally:
        for proc in rogues:
            kc.stop(proc)
        for agent in (a, b):
            agent.stop()


def test_every_member_publishes_the_cosignatures():
    """A cluster: the witnesses give their cosignatures to every member, so
    an agent held to a member neither witness follows is fresh; with a
    member a witness followed killed, it moves to another and the agent
    stays fresh."""
    M = Members(server_options=["--heartbeat", "200"], init_options=["--witnesses", "2"])
    M.start_all()
    ws = [M.add_agent(name=f"mw{i}", options=["--witness", os.path.join(M.dir, "witnesses", f"w{i}_secret"),
                                                "--stale-after", "2000"]) for i in (1, 2)]
    kc.wait_for(lambda: all(w.status()["state"] == "fresh" for w in ws), 20, what="the witnesses fresh")
    # The agent is held to a member neither witness follows
    followed = {w.status()["member"] for w in ws}
    free = next(n for n in M.names if n not in followed)
    port = M.ports[free]
    agent = M.add_agent(name="held", options=["--stale-after", "2000", "--server-snapshot", f"tcp://127.0.0.1:{port}",
                                              "--server-updates", f"tcp://127.0.0.1:{port + 1}"])
    try:
        # A witness that reached a member before the member applied its
        # registration was refused there, and tries again with back-off
        kc.wait_for(lambda: all(w["cosigned"] for w in M.status(free)["witnesses"]), 60,
                    what=f"both witnesses' cosignatures at {free}")
        kc.wait_for(lambda: agent.status()["state"] == "fresh", 20, what=f"the agent at {free} fresh")
        kc.check(agent.status()["member"] == free, agent.status())
        st = M.status(free)
        kc.check(st["witness_threshold"] == 2 and all(w["cosigned"] for w in st["witnesses"]), st)
        followed = ws[0].status()["member"]
        M.stop(followed, signal.SIGKILL)
        kc.wait_for(lambda: all(w.status()["member"] != followed for w in ws), 20,
                    what="the witnesses to move to another member")
        M.cli("register", "after-kill", "--key", zmq.curve_keypair()[0].decode())
        seq = M.wait_same()[0]              # applied on every running member, the held one's too
        kc.wait_for(lambda: agent.status()["seq"] == seq and agent.status()["state"] == "fresh", 20,
                    what=f"the agent at {free} fresh at the new seq")
    finally:
        for a in M.agents:
            a.stop()
        for name in list(M.procs):
            M.stop(name)


def head_bytes(cache):
    import sqlite3
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        return bytes(db.execute("SELECT head FROM state").fetchone()[0])
    finally:
        db.close()


def head_seq(cache):
    import sqlite3
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT head FROM state").fetchone()
    finally:
        db.close()
    return int.from_bytes(row[0][37:45], "big") if row and row[0] else -1


if __name__ == "__main__":
    kc.main([test_setup, test_one_witness_down_stays_fresh, test_two_witnesses_down_go_stale,
             test_withholding_a_revocation, test_a_rebuilt_witness_never_cosigns_below_what_it_cosigned,
             test_a_split_view, test_split_agents_come_back,
             test_server_refuses_bad_cosignatures, test_a_fork_is_a_proof, test_a_bad_proof_is_refused,
             test_witnesses_change_with_the_root, test_the_witness_daemon, test_heads_in_the_handshake,
             test_every_member_publishes_the_cosignatures])
