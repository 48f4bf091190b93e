#!/usr/bin/python3
"""Metrics (issue 13): `keyclone metrics` prints the agent's, and with
--server the server's, counters and gauges in the Prometheus text format:
every line parses, every sample follows its metric's HELP and TYPE, and the
values follow what happened: registrations applied, a forged batch refused
(server) and a forged one served by a rogue (agent), handshakes denied, a
reader's connection closed by its revocation, an agent's lag."""
import os
import re
import time

import zmq

import kc
from cluster import Cluster, submit_raw

C = Cluster()
SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.]+)$')


def parse(text):
    """{(name, labels): value}; fails on a line that is not the format."""
    samples, declared = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            declared.add(line.split()[2])
            if line.startswith("# TYPE "):
                kc.check(line.split()[3] in ("gauge", "counter"), line)
            continue
        match = SAMPLE.match(line)
        kc.check(match, f"not a Prometheus sample: {line!r}")
        kc.check(match.group(1) in declared, f"{match.group(1)} has no HELP/TYPE before it")
        samples[(match.group(1), match.group(2) or "")] = float(match.group(4))
    return samples


def server_metrics():
    return parse(C.cli("metrics", "--server")[0])


def agent_metrics(agent):
    return parse(kc.keyclone("metrics", "--agent", agent.endpoint)[0])


def test_setup():
    C.start_server("--heartbeat", "200")
    C.add_agent()
    C.wait_converged()


def test_agent_metrics_follow_the_log():
    agent = C.agents[0]
    before = agent_metrics(agent)
    for i in range(3):
        C.cli("register", f"m-{i}", "--key", kc.keyclone("keygen", f"m-{i}", "--dir", C.root_dir)[0].strip())
    status = C.wait_converged()
    after = agent_metrics(agent)
    kc.check(after[("keyclone_agent_seq", "")] == status["seq"], after)
    kc.check(after[("keyclone_agent_applied_total", "")] == before[("keyclone_agent_applied_total", "")] + 3, after)
    kc.check(after[("keyclone_agent_state", '{state="fresh"}')] == 1
             and after[("keyclone_agent_state", '{state="stale"}')] == 0, after)
    kc.check(0 <= after[("keyclone_agent_head_age_seconds", "")] < 5, after)
    kc.check(after[("keyclone_agent_root_expiry_timestamp_seconds", "")] > time.time(), after)
    kc.check(after[("keyclone_agent_rejected_total", '{reason="signature"}')] == 0, after)
    # the agent's local ZAP service: one key it trusts, one it does not
    import zmq.utils.z85
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(agent.endpoint)
    for key in (zmq.utils.z85.decode(agent.key.encode()), bytes(range(32))):
        s.send_multipart([b"ZAP", b"1.0", b"1", b"app", b"127.0.0.1", b"", b"CURVE", key])
        kc.check(s.poll(5000), "the agent did not answer ZAP")
        s.recv_multipart()
    s.close()
    zap = agent_metrics(agent)
    kc.check(zap[("keyclone_agent_zap_total", '{result="allowed"}')] == after[("keyclone_agent_zap_total",
                                                                               '{result="allowed"}')] + 1
             and zap[("keyclone_agent_zap_total", '{result="denied"}')]
             == after[("keyclone_agent_zap_total", '{result="denied"}')] + 1, zap)


def test_server_metrics_count_refusals_denials_and_closures():
    before = server_metrics()
    # a batch whose signature was tampered with
    bad = os.path.join(C.root_dir, "bad.kcb")
    key = kc.keyclone("keygen", "x", "--dir", C.root_dir)[0].strip()
    C.cli("sign", "--register", f"x={key}", "--out", bad)
    with open(bad, "rb") as f:
        data = bytearray(f.read())
    data[-1] ^= 1
    with open(bad, "wb") as f:
        f.write(data)
    _, err = C.cli("submit", bad, expect=1)
    kc.check("bad signature by operator" in err, err)
    # a stranger's handshake on the snapshot channel
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
    s.curve_serverkey = C.server_key.encode()
    monitor = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    s.connect(C.submit_endpoint.rsplit(":", 1)[0] + f":{C.base}")
    kc.check(monitor.poll(5000), "the stranger's handshake was not refused")
    s.disable_monitor()
    s.close()
    # a reader revoked: its connection closed
    victim = C.add_agent("victim")
    C.wait_converged()
    C.cli("revoke", "victim")
    kc.wait_for(lambda: server_metrics()[("keyclone_server_connections_closed_total", "")]
                > before[("keyclone_server_connections_closed_total", "")], 10, what="the victim's connection closed")
    victim.stop()
    C.agents.remove(victim)
    # status --server keeps the revoked agent listed, marked
    text = C.cli("status", "--server")[0]
    kc.check(re.search(r"^    victim .* acked [0-9.]+ s ago  \(key revoked\)$", text, re.M), text)
    listed = [a for a in C.server_status()["agents"] if a["name"] == "victim"]
    kc.check(listed and listed[0]["key_status"] == "revoked", listed)
    after = server_metrics()
    status = C.server_status()
    kc.check(after[("keyclone_server_seq", "")] == status["seq"], after)
    kc.check(after[("keyclone_server_rejected_total", '{reason="signature"}')]
             == before[("keyclone_server_rejected_total", '{reason="signature"}')] + 1, after)
    kc.check(after[("keyclone_server_handshakes_total", '{result="denied"}')]
             > before[("keyclone_server_handshakes_total", '{result="denied"}')], after)
    kc.check(after[("keyclone_server_handshakes_total", '{result="allowed"}')] > 0, after)
    kc.check(after[("keyclone_server_accepted_total", "")] >= before[("keyclone_server_accepted_total", "")] + 2, after)
    lags = {k: v for k, v in after.items() if k[0] == "keyclone_server_agent_lag"}
    kc.check(len(lags) >= 1 and all(v >= 0 for v in lags.values()), lags)
    # the server's refusal is readable only as STATUS is
    reply = submit_raw(C, [b"METRICS"])
    kc.check(reply[0] == b"ERROR" and b"refused" in reply[1], reply)


def test_a_rogue_servers_forgery_is_counted_by_the_agent():
    agent = C.agents[0]
    before = agent_metrics(agent)[("keyclone_agent_rejected_total", '{reason="signature"}')]
    C.stop_server()
    rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "forged"], log=os.path.join(C.root_dir, "rogue.log"))
    try:
        kc.wait_for(lambda: agent_metrics(agent)[("keyclone_agent_rejected_total", '{reason="signature"}')] > before,
                    20, what="the agent to count the forged batch")
    finally:
        kc.stop(rogue)
    C.start_server("--heartbeat", "200")
    C.wait_converged(timeout=60)


def test_a_long_sync_says_how_it_goes():
    """An agent whose first sync takes long logs its progress every 5 s
    (here the server is stopped, so there is none to report but the wait)."""
    import signal
    agent = C.add_agent("slow", start=False)
    C.server.send_signal(signal.SIGSTOP)
    try:
        agent.start()
        kc.wait_for(lambda: re.search(r"kc_agent: syncing for \d+ s: 0 batches, 0 records \(0 records/s\)",
                                      agent.log_text()), 15, what="the agent's progress line")
        #   The same progress in its status, for people and for programs
        status = agent.status()
        kc.check(status["syncing"] and status["sync_records"] == 0 and status["sync_ms"] >= 5000
                 and "sync_target" in status, status)
        out, _ = kc.keyclone("status", "--agent", agent.endpoint, expect=None)
        kc.check(re.search(r"^  syncing for \d+ s: 0 batches, 0 records \(0 records/s\)$", out, re.M), out)
    finally:
        C.server.send_signal(signal.SIGCONT)
    C.wait_converged(timeout=60)


if __name__ == "__main__":
    kc.main([test_setup, test_agent_metrics_follow_the_log, test_server_metrics_count_refusals_denials_and_closures,
             test_a_rogue_servers_forgery_is_counted_by_the_agent, test_a_long_sync_says_how_it_goes])
