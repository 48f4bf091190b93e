#!/usr/bin/python3
"""Attacks on promises the README and docs make, through real processes:

- a revoked reader's open connections are closed by the server before it
  publishes anything else (it never reads the next UPDATE);
- bytes from the network, a file or another person never reach a log or a
  terminal raw: a forged log line and terminal escapes in a submitted name,
  in a batch file given to `keyclone verify`, in a rogue server's STATUS
  text, in a local ZAP request's mechanism field;
- read = members holds on the submission channel: an unregistered key
  learns nothing beyond "refused" from QUERY and STATUS; a registered
  member or an operator-signed request reads;
- a flood of bad submissions writes a bounded number of log lines, with a
  summary of what was suppressed;
- a key registered at the highest version can still be revoked.
"""
import json
import os
import re
import struct
import threading
import time

import zmq
import zmq.auth
import zmq.utils.z85

import kc
from cluster import Cluster, submit_raw

C = Cluster(server_options=["--heartbeat", "200"])
T = C.root_dir
KEYS = os.path.join(T, "keys")

# A forged log line and terminal escapes: OSC title (ESC ] 0 ; ... BEL), clear screen
EVIL = b"x\nE: (keyclone-server) 26-11-29 16:00:00 operator alice revoked everything\x1b]0;title\x07\x1b[2J"


def controls(data):
    """The control bytes in data other than newline (and their count)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return [b for b in data if (b < 0x20 and b != 0x0a) or b == 0x7f]


def forged_lines(text):
    return [line for line in text.splitlines() if "operator alice revoked everything" in line
            and line.lstrip().startswith("E: (keyclone-server)")]


def raw_batch(name, key=None):
    """A batch whose only record carries name unchecked (the encoder would
    refuse it): magic, format, directory, created, count, record, no
    signatures (records.md sections 3 and 4)."""
    directory = bytes.fromhex(json.loads(C.cli("verify", "--json", os.path.join(C.dir, "root"))[0])["directory"])
    key = key or os.urandom(32)
    record = (b"\x01" + directory + key + struct.pack(">Q", 1) + b"\x01" + struct.pack(">QQ", 0, 0)
              + bytes([len(name)]) + name + b"\x00" + b"\x00")
    return b"KCBT\x01" + directory + struct.pack(">QI", int(time.time()), 1) + record + b"\x00"


def test_setup():
    C.start_server()
    for n in range(3):
        C.add_agent(options=["--stale-after", "2000"])
    C.wait_converged()


def test_revoked_reader_is_cut_off():
    reader = C.agents[2]
    server_log = len(C.server_log_text())
    C.cli("revoke", reader.name, "--reason", "stolen laptop")
    # The refusal itself: the server closes the reader's connections ...
    kc.wait_for(lambda: f"closed the connection of reader {reader.name}" in C.server_log_text()[server_log:],
                10, what="the server to close the revoked reader's connection")
    # ... and refuses it when it comes back
    kc.wait_for(lambda: "refused this node's key" in reader.log_text(), 10,
                what="the revoked agent to be refused on reconnection")
    before = reader.status()["seq"]
    key = kc.keyclone("keygen", "payroll-1", "--dir", KEYS)[0].strip()
    C.cli("register", "payroll-1", "--key", key, "--tag", "role=payroll")
    status = C.wait_converged(agents=C.agents[:2])
    kc.check(reader.lookup(key)["status"] == "unknown", "the revoked reader learned of payroll-1")
    kc.check(reader.status()["seq"] == before < status["seq"],
             f"the revoked reader moved from seq {before} to {reader.status()['seq']}")


def test_an_expired_reader_is_cut_off():
    """A reader whose key's not-after passes is closed by the server within a
    heartbeat, and refused when it comes back."""
    agent = C.add_agent(name="expiring", register=False, start=False, options=["--stale-after", "2000"])
    C.cli("register", agent.name, "--key", agent.key, "--expires", "3s")
    agent.start()
    C.wait_converged(agents=[agent])
    server_log = len(C.server_log_text())
    kc.wait_for(lambda: f"closed the connection of reader {agent.name}" in C.server_log_text()[server_log:]
                and "key has expired" in C.server_log_text()[server_log:], 10,
                what="the server to close the expired reader's connection")
    kc.wait_for(lambda: "refused this node's key" in agent.log_text(), 10,
                what="the expired agent to be refused on reconnection")
    agent.stop()
    C.agents.remove(agent)


def test_submitted_name_is_escaped_in_reply_and_log():
    reply = submit_raw(C, [b"SUBMIT", raw_batch(EVIL)])
    kc.check(reply and reply[0] == b"ERROR" and b"invalid name" in reply[1], reply)
    kc.check(not controls(reply[1]), f"control bytes in the reason sent back: {reply[1]!r}")
    log = C.server_log_text()
    kc.check("invalid name" in log, "the refusal was not logged")
    kc.check(not controls(log), "control bytes reached server.log")
    kc.check(not forged_lines(log), "a forged line reached server.log:\n" + "\n".join(forged_lines(log)))


def test_verify_and_cosign_escape_a_hostile_file():
    path = os.path.join(T, "evil.kcb")
    with open(path, "wb") as f:
        f.write(raw_batch(EVIL))
    for command in (["verify", path], ["verify", "--json", path], ["cosign", path, "--operator", "op1"]):
        result = kc.run([kc.KEYCLONE, *command, "--dir", C.dir], expect=None)
        both = result[0] + result[1]
        kc.check("invalid name" in both, f"{command}: {both!r}")
        kc.check(not controls(both), f"{command} printed control bytes: {both!r}")
        kc.check(not forged_lines(both), f"{command} printed a forged line: {both!r}")


def test_rogue_status_text_is_escaped():
    """A server with the right key whose STATUS text carries terminal
    escapes: they are printed as text (the rendering's lines are the
    server's to choose)."""
    ctx = zmq.Context.instance()
    public, secret = zmq.auth.load_certificate(os.path.join(C.dir, "server", "curve_secret"))
    rogue = ctx.socket(zmq.ROUTER)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.curve_server = True
    rogue.curve_publickey, rogue.curve_secretkey = public, secret
    port = rogue.bind_to_random_port("tcp://127.0.0.1")
    done = threading.Event()

    def serve():
        while not done.is_set():
            if rogue.poll(50):
                frames = rogue.recv_multipart()
                text = b"server: " + EVIL + b"\n"
                rogue.send_multipart([frames[0], b"STATUS", b'{"role": "server"}', text])
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        out, _ = kc.keyclone("status", "--server", f"tcp://127.0.0.1:{port}", "--dir", C.dir)
    finally:
        done.set()
        thread.join()
        rogue.close()
    # The rendering is the server's, lines and all; its escapes are not
    kc.check("operator alice revoked everything" in out and "\\x1b]0;title\\x07\\x1b[2J" in out, out)
    kc.check(not controls(out), f"status --server printed control bytes: {out!r}")


def test_local_zap_mechanism_is_escaped_in_the_agent_log():
    agent = C.agents[0]
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(agent.endpoint)
    s.send_multipart([b"ZAP", b"1.0", b"1", b"d", b"127.0.0.1", b"", b"\nE: (forged) \x1b[2J",
                      b"x" * 32])
    kc.check(s.poll(3000), "the agent did not answer")
    reply = s.recv_multipart()
    s.close()
    kc.check(reply[2] == b"400" and not controls(reply[3]), reply)
    kc.wait_for(lambda: "CURVE clients only" in agent.log_text(), 5, what="the agent to log the denial")
    log = agent.log_text()
    kc.check(not controls(log), "control bytes reached the agent log")
    kc.check(not [line for line in log.splitlines() if line.startswith("E: (forged)")],
             "a forged line reached the agent log")


def read_as(public, secret, frames):
    """Sends frames on the submission channel with this CURVE key pair."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey = public, secret
    s.curve_serverkey = C.server_key.encode()
    s.connect(C.submit_endpoint)
    s.send_multipart(frames)
    reply = s.recv_multipart() if s.poll(5000) else None
    s.close()
    return reply


def test_read_members_on_the_submission_channel():
    queries = ([b"QUERY", b"list", b"", struct.pack(">I", 100)], [b"STATUS"],
               [b"QUERY", b"name", b"agent-1", struct.pack(">I", 100)],
               [b"STATUS", os.urandom(104)])
    # A stranger, with or without a made-up authorization: refused, nothing else
    public, secret = zmq.curve_keypair()
    for frames in queries:
        reply = read_as(public, secret, frames)
        kc.check(reply and reply[0] == b"ERROR" and reply[1].startswith(b"refused"), reply)
        kc.check(b"agent-" not in b"".join(reply) and b"role=" not in b"".join(reply), reply)
    # The revoked reader of the first test: refused too
    revoked = zmq.auth.load_certificate(os.path.join(C.agents[2].dir, "node_secret"))
    reply = read_as(*revoked, queries[1])
    kc.check(reply[0] == b"ERROR" and reply[1].startswith(b"refused"), reply)
    # A registered member reads: a console key, from a directory with no operator key
    console = os.path.join(KEYS, "console")
    C.cli("register", "console", "--key", kc.keyclone("keygen", "console", "--dir", KEYS)[0].strip(),
          "--tag", "role=console")
    bare = os.path.join(T, "bare")
    os.makedirs(bare)
    with open(os.path.join(C.dir, "root"), "rb") as src, open(os.path.join(bare, "root"), "wb") as dst:
        dst.write(src.read())
    out, err = kc.keyclone("status", "--server", "--dir", bare, expect=1)
    kc.check("refused: read = members" in err, err)
    out, _ = kc.keyclone("list", "--dir", bare, "--client-key", console)
    kc.check("agent-1" in out and "console" in out, out)
    env = dict(os.environ, KEYCLONE_CLIENT_KEY=console)
    out, _ = kc.keyclone("status", "--server", "--json", "--dir", bare, env=env)
    kc.check(json.loads(out)["role"] == "server", out)
    # An operator's key at hand signs the request instead
    out, _ = C.cli("show", "agent-1")
    kc.check("agent-1" in out, out)
    log = C.server_log_text()
    kc.check("STATUS from" in log and "refused" in log, "refusals were not logged")


def test_a_flood_of_bad_submissions_logs_little():
    """100,000 bad submissions from 10 peers: a few lines per peer, then one
    summary that accounts for every line it suppressed."""
    before = C.server_status()["rejected"]
    size = os.path.getsize(C.server_log)
    ctx = zmq.Context.instance()
    sockets = []
    for _ in range(10):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 0)
        public, secret = zmq.curve_keypair()
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, C.server_key.encode()
        s.connect(C.submit_endpoint)
        sockets.append(s)
    started = time.monotonic()
    for s in sockets:
        for i in range(10000):
            s.send_multipart([b"SUBMIT", b"not a batch %d" % i])
    def refused_all():
        try:                                 # a status request may wait behind the flood: ask again
            return C.server_status(timeout=10000)["rejected"] - before >= 100000
        except (ValueError, KeyError):
            return False
    kc.wait_for(refused_all, 90, interval=0.2, what="the server to refuse all 100,000")
    took = time.monotonic() - started
    for s in sockets:
        s.close()
    C.stop_server()                          # a clean stop writes the pending summaries
    with open(C.server_log, "rb") as f:
        f.seek(size)
        text = f.read().decode(errors="replace")
    C.start_server()
    lines = text.splitlines()
    logged = [line for line in lines if "kc_server: rejected batch from" in line and "suppressed" not in line]
    summaries = [int(n) for n in re.findall(r"suppressed (\d+) similar lines \(rejected batch\)", text)]
    print(f"    100,000 refusals in {took:.1f} s: {len(lines)} log lines ({len(text)} bytes), "
          f"{len(logged)} refusals logged, {sum(summaries)} suppressed in {len(summaries)} summaries")
    kc.check(summaries and len(logged) + sum(summaries) == 100000,
             f"{len(logged)} logged + {sum(summaries)} suppressed != 100000")
    kc.check(len(lines) < 100 and len(text) < 30000, f"{len(lines)} lines, {len(text)} bytes")


def test_a_key_at_the_highest_version_is_revocable():
    key = kc.keyclone("keygen", "maxver", "--dir", KEYS)[0].strip()
    C.cli("register", "maxver", "--key", key, "--version", str(2 ** 63 - 1))
    C.wait_converged(agents=C.agents[:2])
    kc.check(C.agents[0].lookup(key)["status"] == "trusted", C.agents[0].lookup(key))
    out, _ = C.cli("revoke", "maxver", "--reason", "planted")
    kc.check("revoked maxver" in out, out)
    C.wait_converged(agents=C.agents[:2])
    for agent in C.agents[:2]:
        entry = agent.lookup(key)
        kc.check(entry["status"] == "revoked" and entry["reason"] == "planted", entry)
    # and it stays revoked: a registration at the highest version is refused
    out, err = C.cli("register", "maxver", "--key", key, "--version", str(2 ** 63 - 1), "--tag", "role=again",
                     expect=1)
    kc.check("revocation is terminal" in err, err)


if __name__ == "__main__":
    kc.main([test_setup, test_revoked_reader_is_cut_off, test_an_expired_reader_is_cut_off,
             test_submitted_name_is_escaped_in_reply_and_log,
             test_verify_and_cosign_escape_a_hostile_file, test_rogue_status_text_is_escaped,
             test_local_zap_mechanism_is_escaped_in_the_agent_log,
             test_read_members_on_the_submission_channel, test_a_flood_of_bad_submissions_logs_little,
             test_a_key_at_the_highest_version_is_revocable])
