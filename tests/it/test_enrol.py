#!/usr/bin/python3
"""Enrolment (issue 12): a node asks to join with `keyclone enrol` over the
submission channel, authenticated by its own CURVE key; the server keeps the
request (pending, bounded, rate-limited per source, expiring, persisted,
never trusted); operators list it with `keyclone pending`, check the
comparison code and sign its registration with `keyclone approve`, or
refuse it with `keyclone reject`; `enrol --wait` returns once the key is
registered (and the node's agent then syncs) or rejected (with the reason).
Every refusal is observed as the reply the client prints.
"""
import json
import os
import re
import signal
import subprocess
import time

import zmq
from zmq.utils import z85

import kc
from cluster import Agent, Cluster, submit_raw

C = Cluster()
CONFIG = os.path.join(C.root_dir, "server.cfg")
ROOT = os.path.join(C.dir, "root")


def write_config(expiry="24h", limit=1000, rate=10):
    with open(CONFIG, "w") as f:
        f.write(f"server\n    enrol\n        expiry = {expiry}\n        max = {limit}\n        rate = {rate}\n")


def node(name):
    """A node's directory, with the root copied as the docs say; no key yet."""
    path = os.path.join(C.root_dir, "nodes", name)
    os.makedirs(path, exist_ok=True)
    return path


def enrol(path, name, *args, expect=0):
    out, err = kc.keyclone("enrol", name, "--dir", path, "--root", ROOT, *args, expect=expect)
    return out, err


def pending():
    return json.loads(C.cli("pending", "--json")[0])


def test_setup():
    write_config()
    C.server_options = ["--config", CONFIG]
    C.start_server()


def test_enrol_approve_and_the_agent_syncs():
    agent = C.add_agent("web-7", register=False)      # its key is not a member: refused
    kc.wait_for(lambda: re.search(r"denied [0-9A-F]{8} on keyclone-snapshot: key is not registered",
                                  C.server_log_text()), 10, what="the server to refuse the agent's key")
    out, _ = enrol(agent.dir, "web-7", "--tag", "role=web", "--tag", "dc=eu")
    fields = dict(re.findall(r"^  (\w+) +(\S+)", out, re.M))
    #   23h, or 24h on a machine whose wall clock steps back a little (VMs do)
    kc.check(re.match(r"enrolment of web-7 pending \(expires in 2[34]h\)", out) and fields["key"] == agent.key
             and fields["tags"] == "dc=eu,role=web", out)
    code = fields["code"]
    listed = pending()
    kc.check(len(listed) == 1 and listed[0]["name"] == "web-7" and listed[0]["code"] == code
             and listed[0]["fingerprint"] == fields["fingerprint"] and listed[0]["source"] == "127.0.0.1"
             and listed[0]["tags"] == ["dc=eu", "role=web"] and listed[0]["state"] == "pending", listed)
    text = C.cli("pending")[0]
    kc.check(re.search(rf"^web-7 +{fields['fingerprint']} +{code} +pending +\d+s +2[34]h +127\.0\.0\.1 +dc=eu,role=web$",
                       text, re.M), text)
    # pending is not a member: the agent is still refused, and a lookup does not know the key
    kc.check(agent.status()["seq"] == 0, agent.status())
    # asked again, the same request: where it stands (what --wait does)
    again, _ = enrol(agent.dir, "web-7", "--tag", "role=web", "--tag", "dc=eu", "--json")
    kc.check(json.loads(again)["state"] == "pending" and json.loads(again)["code"] == code, again)
    # the same key asking under another name is refused while it waits
    _, err = enrol(agent.dir, "web-8", expect=1)
    kc.check("refused: a request from this key is already pending as 'web-7'" in err, err)

    # after each refusal the agent waits longer (doubling to a minute): once its next try is 8 s or more
    # away, the agent syncing right after the approval is enrol --wait's doing (RECONNECT), not its retry
    kc.wait_for(lambda: agent.status()["refused_retry_ms"] >= 8000, 90, what="the agent's retry 8 s away")
    waiter = subprocess.Popen([kc.KEYCLONE, "enrol", "web-7", "--tag", "role=web", "--tag", "dc=eu", "--dir",
                               agent.dir, "--root", ROOT, "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    out, _ = C.cli("approve", fields["fingerprint"].lower(), "--code", code.lower().replace("-", ""))
    seq = int(re.search(rf"^approved web-7 \({fields['fingerprint']}, code {code}\): registered at seq (\d+)$",
                        out).group(1))
    waited, err = waiter.communicate(timeout=30)
    kc.check(waiter.returncode == 0 and f"web-7 is registered (seq {seq})" in waited, (waited, err))
    # --wait asked the agent to connect again at once (its own retry after the refusals may be a minute
    # away) and returned once the agent had synced
    kc.check(f"the agent at {agent.endpoint} has synced to seq {seq} (asked to connect again at once)" in waited,
             waited)
    kc.check("connecting again, as asked (this node's key may be admitted now)" in agent.log_text(),
             agent.log_text())
    st = agent.status()
    kc.check(st["seq"] >= seq and st["state"] == "fresh" and st["refused_retry_ms"] == 0, st)
    # admitted and synced, the agent has nothing to do when asked again
    kc.check(agent.request("RECONNECT")["reconnect"] == "none", "RECONNECT on a synced agent")
    looked = agent.lookup(agent.key)
    kc.check(looked["status"] == "trusted" and looked["tags"] == ["dc=eu", "role=web"], looked)
    kc.check(pending() == [], "the request is done once registered")
    # a registered key asking again is told it is registered
    out, _ = enrol(agent.dir, "web-7")
    kc.check(out.startswith(f"web-7 is registered (seq {seq})"), out)


def test_reconnect_is_rate_limited():
    """However often a local client asks, a refused agent connects again at most once per 2 s."""
    agent = C.add_agent("stray-1", register=False)
    fingerprint = z85.decode(agent.key)[:4].hex().upper()
    try:                                               # RECONNECT takes no argument: refused, with the reason
        agent.request("RECONNECT", "now")
        kc.check(False, "RECONNECT with an argument was taken")
    except RuntimeError as refused:
        kc.check("expected LOOKUP KEY, NAME NAME, PREFIX HEX, STATUS, METRICS or RECONNECT" in str(refused), str(refused))
    # the server's own word (under load libzmq may show the agent a closed connection, not the refusal)
    kc.wait_for(lambda: f"denied {fingerprint} on keyclone-snapshot: key is not registered" in C.server_log_text(),
                10, what="the server to refuse the agent")
    first = agent.request("RECONNECT")
    kc.check(first["reconnect"] in ("now", "later") and first["key"] == fingerprint, first)
    asked = time.time()
    replies = [agent.request("RECONNECT") for _ in range(20)]
    kc.check(all(r["reconnect"] == "later" and 0 < r["in_ms"] <= 2000 for r in replies), replies)
    kc.wait_for(lambda: agent.log_text().count(", as asked") >= 2 - (first["reconnect"] == "later"), 10,
                what="the agent to connect again as asked")
    time.sleep(max(0.0, asked + 2.5 - time.time()))
    # one connection now (or when allowed) and one for the 20 requests after it: no more
    kc.check(agent.log_text().count(", as asked") <= 2, agent.log_text())
    agent.stop()


def test_wrong_code_and_tags_given_by_the_operator():
    path = node("db-1")
    out, _ = enrol(path, "db-1", "--tag", "role=db")
    kc.check(out.startswith("made the node's key"), out)
    code = re.search(r"code +(\S+)", out).group(1)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    before = C.server_status()["seq"]
    _, err = C.cli("approve", "db-1", "--code", wrong, expect=1)
    kc.check(f"has code {code}, not {wrong}" in err and "not approved" in err, err)
    kc.check(C.server_status()["seq"] == before and pending()[0]["state"] == "pending", "nothing was signed")
    _, err = C.cli("approve", "db-1", "--code", "123-45", expect=2)
    kc.check("not a comparison code" in err, err)
    # the operator's --tag replaces what the node asked for
    out, _ = C.cli("approve", "db-1", "--code", code, "--tag", "role=db", "--tag", "dc=us", "--expires", "30d")
    kc.check(out.startswith("approved db-1"), out)
    shown = C.cli("show", "db-1")[0]
    kc.check("tags dc=us,role=db" in shown and re.search(r"expires \d{4}-\S+Z \(in (29|30) days\)", shown), shown)
    _, err = C.cli("approve", "db-1", expect=1)
    kc.check("no pending enrolment request matches 'db-1'" in err, err)


def test_ambiguous_requests_and_reject_by_fingerprint():
    """A request named by another's fingerprint: the two are ambiguous, for
    approve and reject alike, and both are listed; the fingerprint of the
    key, or the key, picks one. pending --json says each request's age."""
    started = time.time()
    out, _ = enrol(node("fp-1"), "fp-1")
    fp = re.search(r"^  fingerprint  ([0-9A-F]{8})$", out, re.M).group(1)
    key = re.search(r"^  key +(\S+)$", out, re.M).group(1)
    enrol(node("hexname"), fp.lower())              # a node whose name is fp-1's fingerprint
    time.sleep(1.1)
    listed = {e["name"]: e for e in pending()}
    age = listed["fp-1"]["age_ms"]
    kc.check(1000 <= age <= (time.time() - started) * 1000 + 1, f"age_ms {age}")
    kc.check(listed[fp.lower()]["age_ms"] <= age, listed)
    before = C.server_status()["seq"]
    for command in ("approve", "reject"):
        _, err = C.cli(command, fp.lower(), expect=1)
        kc.check(f"'{fp.lower()}' matches 2 pending requests; give the fingerprint or the key:" in err
                 and re.search(rf"^  {fp}  fp-1$", err, re.M) and re.search(rf"^  [0-9A-F]{{8}}  {fp.lower()}$", err, re.M),
                 err)
    kc.check(C.server_status()["seq"] == before, "nothing was signed")
    # more of the fingerprint, or the key itself, is unambiguous
    hex_key = z85.decode(key).hex()
    out, _ = C.cli("reject", hex_key[:12], "--reason", "by fingerprint")
    kc.check(out.strip() == f"rejected fp-1 ({fp}): by fingerprint", out)
    out, _ = C.cli("reject", fp.lower())         # fp-1 is answered: the name alone matches now
    kc.check(out.startswith(f"rejected {fp.lower()} ("), out)
    listed = {e["name"]: e for e in pending()}
    kc.check(listed["fp-1"]["state"] == "rejected" and listed[fp.lower()]["state"] == "rejected", listed)


def test_reject_with_a_reason():
    path = node("rogue-1")
    enrol(path, "rogue-1")
    waiter = subprocess.Popen([kc.KEYCLONE, "enrol", "rogue-1", "--dir", path, "--root", ROOT, "--wait"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, _ = C.cli("reject", "rogue-1", "--reason", "unknown host")
    kc.check(re.match(r"rejected rogue-1 \([0-9A-F]{8}\): unknown host$", out), out)
    waited, err = waiter.communicate(timeout=30)
    kc.check(waiter.returncode == 1 and "the enrolment of rogue-1 was rejected: unknown host" in waited,
             (waited, err))
    listed = [e for e in pending() if e["name"] == "rogue-1"]
    kc.check(listed and listed[0]["state"] == "rejected" and listed[0]["reason"] == "unknown host", listed)
    # the same key cannot ask again while the rejection stands; nor can it be approved
    out, _ = enrol(path, "rogue-1", expect=1)
    kc.check("rejected: unknown host" in out, out)
    _, err = C.cli("approve", "rogue-1", expect=1)
    kc.check("no pending enrolment request matches" in err, err)
    # REJECT needs an operator's signature, whoever asks
    key = bytes(32)
    reply = submit_raw(C, [b"REJECT", key, b"x", bytes(104)])
    kc.check(reply[0] == b"ERROR" and reply[1].startswith(b"refused: "), reply)
    reply = submit_raw(C, [b"REJECT", key, b"x"])
    kc.check(reply[0] == b"ERROR" and b"REJECT has 3 frames" in reply[1], reply)


def test_refusals_revoked_members_and_readers():
    path = node("old-1")
    key = kc.keyclone("keygen", "node", "--dir", path)[0].strip()
    C.cli("register", "old-1", "--key", key)
    C.cli("revoke", "old-1")
    _, err = enrol(path, "old-1", expect=1)
    kc.check("revoked, and revocation is terminal: make a new key" in err, err)
    _, err = enrol(path, "bad name", expect=2)
    kc.check("invalid NAME" in err, err)
    reply = submit_raw(C, [b"ENROL", b"web-9", b"bad tag"])
    kc.check(reply[0] == b"ERROR" and b"ENROL tag 1 is not a valid tag" in reply[1], reply)
    # read = members: the list is for operators and members, not for a stranger
    reply = submit_raw(C, [b"PENDING"])
    kc.check(reply[0] == b"ERROR" and b"needs a registered member's key or an operator's signature" in reply[1],
             reply)


def test_expired_requests_and_restart():
    write_config(expiry="2s")
    C.server.send_signal(signal.SIGHUP)
    kc.wait_for(lambda: "enrol expiry 2 s" in C.server_log_text(), 10, what="the server to apply enrol/expiry")
    path = node("late-1")
    enrol(path, "late-1")
    kc.check(any(e["name"] == "late-1" for e in pending()), "late-1 pending")
    kc.wait_for(lambda: not any(e["name"] == "late-1" for e in pending()), 10, what="late-1 to expire")
    _, err = C.cli("approve", "late-1", expect=1)
    kc.check("no pending enrolment request matches 'late-1'" in err, err)
    # enrol --wait on a request nobody answers returns when it expires, and says so
    out, err = enrol(node("late-2"), "late-2", "--wait", expect=1)
    kc.check(re.search(r"^enrolment of late-2 pending \(expires in [012]s\)$", out, re.M), out)
    kc.check("the request expired unanswered; run 'keyclone enrol' again to ask again" in err, err)
    # requests survive a restart (persisted); an --wait whose request expires says so
    write_config(expiry="1h")
    C.stop_server()
    C.start_server()
    path = node("kept-1")
    enrol(path, "kept-1")
    C.stop_server()
    C.start_server()
    kc.check(any(e["name"] == "kept-1" and e["state"] == "pending" for e in pending()), pending())
    C.cli("reject", "kept-1")


def test_a_flood_is_bounded_and_the_server_stays_responsive():
    write_config(limit=1000, rate=5)
    C.server.send_signal(signal.SIGHUP)
    kc.wait_for(lambda: "rate 5/min" in C.server_log_text(), 10, what="the server to apply enrol/rate")
    before = len(pending())
    replies = [submit_raw(C, [b"ENROL", f"flood-{i}".encode()]) for i in range(40)]
    accepted = [r for r in replies if r[0] == b"ENROLMENT"]
    limited = [r for r in replies if r[0] == b"ERROR" and b"too many enrolment requests from 127.0.0.1" in r[1]]
    kc.check(len(accepted) <= 5 and len(accepted) + len(limited) == 40, [r[:2] for r in replies[:8]])
    started = time.monotonic()
    kc.check(C.server_status()["seq"] > 0, "the server answers")
    kc.check(time.monotonic() - started < 5, "the server answered at once")
    kc.check(len(pending()) == before + len(accepted), "only the admitted requests are kept")
    # the list's own bound: room for two more, whatever the rate
    write_config(limit=before + len(accepted) + 2, rate=1000)
    C.server.send_signal(signal.SIGHUP)
    kc.wait_for(lambda: "rate 1000/min" in C.server_log_text(), 10, what="the server to apply enrol/max")
    time.sleep(1)                            # the source's bucket refills at the new rate
    replies = [submit_raw(C, [b"ENROL", f"more-{i}".encode()]) for i in range(10)]
    full = [r for r in replies if r[0] == b"ERROR" and b"enrolment requests are already waiting" in r[1]]
    kc.check(sum(r[0] == b"ENROLMENT" for r in replies) == 2 and len(full) == 8, [r[:2] for r in replies])
    kc.check("too many enrolment requests" in C.server_log_text(), "the refusals are logged")


def test_threshold_two_approves_through_cosign():
    c2 = Cluster(operators=2, threshold=2, names=["alice", "bob"])
    c2.start_server()
    try:
        path = os.path.join(c2.root_dir, "node")
        os.makedirs(path)
        out, _ = kc.keyclone("enrol", "app-1", "--dir", path, "--root", os.path.join(c2.dir, "root"))
        code = re.search(r"code +(\S+)", out).group(1)
        batch = os.path.join(c2.root_dir, "app-1.kcb")
        _, err = c2.cli("approve", "app-1", "--code", code, "--operator", "alice", expect=1)
        kc.check("signature threshold 2 not met" in err, err)
        out, _ = c2.cli("approve", "app-1", "--code", code, "--operator", "alice", "--out", batch)
        kc.check("cosign it" in out, out)
        c2.cli("cosign", batch, "--operator", "bob")
        out, _ = c2.cli("submit", batch)
        kc.check("accepted at seq" in out, out)
        out, _ = kc.keyclone("enrol", "app-1", "--dir", path, "--root", os.path.join(c2.dir, "root"))
        kc.check(out.startswith("app-1 is registered"), out)
    finally:
        c2.stop_server()


def test_the_agent_enrols_on_its_first_start():
    """keyclone-agent --enrol NAME on a node with no key: the agent makes the
    key, asks to join (the code in its log), runs refused meanwhile, and
    syncs once an operator approves; a rejected one logs the reason."""
    c3 = Cluster()
    c3.start_server()
    agent_bin = os.path.join(kc.BIN, "keyclone-agent")
    root = os.path.join(c3.dir, "root")
    procs = []
    try:
        _, err = kc.run([agent_bin, "--dir", c3.root_dir, "--root", root, "--tag", "role=web"], expect=2)
        kc.check("--tag goes with --enrol" in err, err)
        _, err = kc.run([agent_bin, "--dir", c3.root_dir, "--root", root, "--enrol", "web 30"], expect=2)
        kc.check("--enrol: invalid NAME" in err, err)
        nodes = {}
        for name in ("web-30", "web-31"):
            path = os.path.join(c3.root_dir, name)
            os.makedirs(path)
            log = os.path.join(path, "agent.log")
            procs.append(kc.spawn([agent_bin, "--dir", path, "--root", root, "--enrol", name, "--tag", "role=web"],
                                  log=log))
            nodes[name] = (path, log)

        def text(name):
            with open(nodes[name][1], errors="replace") as f:
                return f.read()
        for name in nodes:
            kc.wait_for(lambda: f"enrolment of {name} pending" in text(name), 20, what=f"{name}'s request")
        path, _ = nodes["web-30"]
        kc.check(oct(os.stat(os.path.join(path, "node_secret")).st_mode & 0o777) == "0o600", "node_secret 0600")
        logged = text("web-30")
        kc.check("made this node's key" in logged, logged)
        m = re.search(r"enrolment of web-30 pending: key (\S+), fingerprint ([0-9A-F]{8}), code (\S+) ", logged)
        kc.check(m, logged)
        with open(os.path.join(path, "node")) as f:
            kc.check(m.group(1) in f.read(), "the key logged is the key made")
        listed = {e["name"]: e for e in json.loads(c3.cli("pending", "--json")[0])}
        kc.check(listed["web-30"]["code"] == m.group(3) and listed["web-30"]["tags"] == ["role=web"], listed)
        out, _ = c3.cli("approve", "web-30", "--code", m.group(3))
        seq = int(re.search(r"registered at seq (\d+)", out).group(1))
        out, _ = c3.cli("reject", "web-31", "--reason", "not in the inventory")
        kc.wait_for(lambda: "the enrolment of web-30 is approved" in text("web-30"), 20, what="web-30 approved")
        agent = Agent.__new__(Agent)            # the test's handle on it; the agent made its own key
        agent.name, agent.dir, agent.endpoint = "web-30", path, f"ipc://{path}/agent.ipc"
        st = agent.wait_seq(seq, 30)
        kc.check(st["state"] == "fresh", st)
        #   it connected again either because the approval told it so, or because its own retry after the
        #   refusal came first: both are fine, and either way it is in sync
        kc.check(re.search(r"connecting again: this node's key was admitted|connecting again after the server "
                           r"refused this node's key", text("web-30")), text("web-30"))
        kc.wait_for(lambda: "the enrolment of web-31 was rejected: not in the inventory" in text("web-31"), 20,
                    what="web-31 to log the rejection")
        other = Agent.__new__(Agent)
        other.name, other.endpoint = "web-31", f"ipc://{nodes['web-31'][0]}/agent.ipc"
        kc.check(other.status()["seq"] == 0, "the rejected node has synced nothing")
        # started again with its key registered: nothing to ask, it syncs
        kc.stop(procs[0])
        procs[0] = kc.spawn([agent_bin, "--dir", path, "--root", root, "--enrol", "web-30", "--tag", "role=web"],
                            log=nodes["web-30"][1])
        kc.wait_for(lambda: text("web-30").count("the enrolment of web-30 is approved") == 2, 20,
                    what="the second start to find the key registered")
        kc.check(text("web-30").count("made this node's key") == 1, "the key is made once")
        agent.wait_seq(seq, 30)
    finally:
        for proc in procs:
            kc.stop(proc)
        c3.stop_server()


if __name__ == "__main__":
    kc.main([test_setup, test_enrol_approve_and_the_agent_syncs, test_reconnect_is_rate_limited,
             test_wrong_code_and_tags_given_by_the_operator,
             test_ambiguous_requests_and_reject_by_fingerprint,
             test_reject_with_a_reason, test_refusals_revoked_members_and_readers, test_expired_requests_and_restart,
             test_a_flood_is_bounded_and_the_server_stays_responsive, test_threshold_two_approves_through_cosign,
             test_the_agent_enrols_on_its_first_start])
