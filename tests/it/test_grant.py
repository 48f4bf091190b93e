#!/usr/bin/python3
"""Enrolment grants (issue 12): operators sign a grant (name pattern, tags,
not-after, number of uses, the public half of a grant key); a node holding
the token registers itself with `keyclone enrol NAME --token FILE`, without
an operator online. The server refuses what the grant does not allow (a
name outside the pattern, other tags, a wrong token, a used-up, expired or
revoked grant, a key already known), and every agent checks each use
against the grant in log order, live and in a sync from 0, so a rogue
server that serves a forged use, or one use too many, is caught.
"""
import json
import os
import re
import sqlite3
import time

import kc
from cluster import Cluster

C = Cluster()
ROOT = os.path.join(C.dir, "root")
TOKEN = os.path.join(C.root_dir, "web.token")


def node(name):
    path = os.path.join(C.root_dir, "nodes", name)
    os.makedirs(path, exist_ok=True)
    return path


def enrol(name, token=TOKEN, *extra, expect=0, path=None):
    return kc.keyclone("enrol", name, "--token", token, "--dir", path or node(name), "--root", ROOT, *extra,
                       expect=expect)


def test_setup():
    C.start_server()
    for _ in range(2):
        C.add_agent(options=["--stale-after", "1000"])
    C.wait_converged()


def test_a_token_registers_nodes_without_an_operator():
    out, _ = C.cli("grant", "create", "--token", TOKEN, "--pattern", "web-*", "--uses", "3", "--tag", "role=web",
                   "--tag", "dc=eu", "--expires", "1h", "--operator", "op1")
    kc.check(re.match(r"granted grant ([0-9A-F]{8}) at seq \d+\n  grant +\1: names 'web-\*', at most 3, "
                      r"until 20\d\d-\S+Z \(in (59|60) minutes\)$", out, re.M), out)
    kc.check(oct(os.stat(TOKEN + "_secret").st_mode & 0o777) == "0o600", "the token is mode 0600")
    # a node whose agent is refused until the token registers it
    agent = C.add_agent("web-1", register=False)
    out, _ = enrol("web-1", path=agent.dir)
    seq = int(re.match(r"web-1 is registered \(seq (\d+)\) by grant [0-9A-F]{8}", out).group(1))
    for other in C.agents:
        st = other.wait_seq(seq, 30)
        looked = other.lookup(agent.key)
        kc.check(looked["status"] == "trusted" and looked["tags"] == ["dc=eu", "role=web"], (other.name, looked))
    kc.check(agent.status()["state"] == "fresh", agent.status())
    # dates for people: the agent's lookup shows how far away the expiry is
    dated = kc.keyclone("keygen", "dated-1", "--dir", agent.dir)[0].strip()
    seq = int(re.search(r"seq (\d+)", C.cli("register", "dated-1", "--key", dated, "--expires", "30d")[0]).group(1))
    C.agents[0].wait_seq(seq, 30)
    out, _ = C.cli("lookup", "dated-1", "--agent", C.agents[0].endpoint)
    kc.check(re.search(r"^trusted .* dated-1 .* expires 20\d\d-\d\d-\d\dT\S+Z \(in (29|30) days\)", out, re.M), out)
    log, _ = C.cli("log")
    kc.check(re.search(r"grant, signed by op1; submitted by [0-9A-F]{8}\n    grant [0-9A-F]{8}: names 'web-\*', "
                       r"at most 3, until \S+Z \(in (59|60) minutes\), tags dc=eu,role=web", log)
             and re.search(r"register by grant, signed with the token of grant [0-9A-F]{8}; submitted by", log), log)
    # the token never travels: it is nowhere in the log
    with open(TOKEN + "_secret") as f:
        secret = re.search(r'secret-key = "(.*)"', f.read()).group(1)
    kc.check(secret not in log and secret not in C.cli("log", "--json")[0], "the token appears in the log")


def test_what_a_grant_does_not_allow_is_refused():
    before = C.server_status()["seq"]
    _, err = enrol("db-1", expect=1)
    kc.check("name 'db-1' does not match grant" in err and "pattern 'web-*'" in err, err)
    _, err = enrol("web-2", TOKEN, "--tag", "role=admin", expect=1)
    kc.check("the tags are not grant" in err, err)
    # a token that is not this grant's
    other = os.path.join(C.root_dir, "other.token")
    C.cli("grant", "create", "--token", other, "--pattern", "x-*", "--uses", "1", "--operator", "op1")
    os.replace(other + "_secret", TOKEN + ".wrong_secret")
    os.replace(TOKEN + ".grant", TOKEN + ".keep")
    with open(TOKEN + ".keep", "rb") as f, open(TOKEN + ".wrong.grant", "wb") as g:
        g.write(f.read())
    os.replace(TOKEN + ".keep", TOKEN + ".grant")
    _, err = enrol("web-3", TOKEN + ".wrong", expect=1)
    kc.check("the token is not the grant's" in err, err)
    # a registration whose token signature was tampered with: the server says so
    path = node("web-4")
    enrol("web-4", TOKEN, "--out", os.path.join(C.root_dir, "web-4.kcu"), path=path)
    with open(os.path.join(C.root_dir, "web-4.kcu"), "rb") as f:
        data = bytearray(f.read())
    data[-1] ^= 1
    with open(os.path.join(C.root_dir, "web-4-forged.kcu"), "wb") as f:
        f.write(data)
    _, err = C.cli("submit", os.path.join(C.root_dir, "web-4-forged.kcu"), expect=1)
    kc.check("is not signed with the token of grant" in err, err)
    # a key the directory knows already
    _, err = enrol("web-5", TOKEN, "--key", os.path.join(C.agents[0].dir, "node"), expect=1)
    kc.check("is already known to the directory: a grant only adds new keys" in err, err)
    kc.check(C.server_status()["seq"] == before + 1, "only the other grant was added")


def test_uses_run_out_and_agents_count_them():
    for name in ("web-6", "web-7"):
        enrol(name)
    _, err = enrol("web-8", expect=1)
    kc.check("is used up (3 uses)" in err, err)
    # an agent synced from 0 counted the same uses: it holds the grant used up
    late = C.add_agent("late")
    C.wait_converged()
    db = sqlite3.connect(f"file:{late.cache}?mode=ro", uri=True)
    rows = db.execute("SELECT used, revoked FROM grants ORDER BY seq").fetchall()
    kc.check((3, 0) in rows, f"grants in the late agent's cache: {rows}")
    with open(os.path.join(node("web-7"), "node")) as f:
        web7 = re.search(r'public-key = "(.*)"', f.read()).group(1)
    kc.check(late.lookup(web7)["status"] == "trusted", "the late agent trusts a key registered by the grant")


def test_a_rogue_server_cannot_exceed_or_forge():
    """The rogue serves, after the real log, a registration signed with the
    real token (the grant is used up) and then one with a forged signature:
    every agent refuses both and keeps its cache."""
    extra = os.path.join(C.root_dir, "web-9.kcu")
    enrol("web-9", TOKEN, "--out", extra)          # signed by the token; the grant allows no more
    forged = os.path.join(C.root_dir, "web-4-forged.kcu")
    for served, expected in ((extra, "used up"), (forged, "is not signed with the token of grant")):
        agent = C.agents[0]
        seq = agent.status()["seq"]
        log_size = len(agent.log_text())
        C.stop_server()
        rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "extend", served],
                         log=os.path.join(C.root_dir, "rogue.log"))
        try:
            kc.wait_for(lambda: expected in agent.log_text()[log_size:], 20, what=f"the agent to log {expected!r}")
            kc.wait_for(lambda: agent.status()["state"] == "stale", 5, what="the agent to go stale")
            kc.check(agent.status()["seq"] == seq, agent.status())
        finally:
            kc.stop(rogue)
        C.start_server()
        C.wait_converged(timeout=60)


def test_expired_and_revoked_grants():
    token = os.path.join(C.root_dir, "short.token")
    C.cli("grant", "create", "--token", token, "--pattern", "tmp-*", "--uses", "5", "--expires", "2s",
          "--operator", "op1")
    enrol("tmp-1", token)
    time.sleep(2.2)
    _, err = enrol("tmp-2", token, expect=1)
    kc.check(re.search(r"grant [0-9A-F]{8} expired", err), err)
    token = os.path.join(C.root_dir, "leaked.token")
    C.cli("grant", "create", "--token", token, "--pattern", "app-*", "--uses", "5", "--operator", "op1")
    enrol("app-1", token)
    out, _ = C.cli("grant", "revoke", "--token", token, "--reason", "leaked", "--operator", "op1")
    kc.check(re.match(r"revoked grant [0-9A-F]{8} at seq \d+", out), out)
    _, err = enrol("app-2", token, expect=1)
    kc.check("was revoked" in err, err)
    _, err = C.cli("grant", "revoke", "--token", token, "--operator", "op1", expect=1)
    kc.check("already revoked" in err, err)
    C.wait_converged()
    with open(os.path.join(node("app-1"), "node")) as f:
        app1 = re.search(r'public-key = "(.*)"', f.read()).group(1)
    kc.check(C.agents[0].lookup(app1)["status"] == "trusted", "a registration made before the revocation stays")
    st = C.agents[0].status()
    kc.check(st["state"] == "fresh", st)


def public_key(path):
    with open(path) as f:
        return re.search(r'public-key = "(.*)"', f.read()).group(1)


def test_a_token_rotates_a_node():
    """A node holding a grant's token rotates its own key: one log entry
    registers the new key and ends the old one after the overlap; the node's
    agent swaps the files; every agent, and one synced from 0, checks it
    against the grant and the old key's record."""
    token = os.path.join(C.root_dir, "svc.token")
    C.cli("grant", "create", "--token", token, "--pattern", "svc-*", "--uses", "4", "--tag", "role=svc",
          "--operator", "op1")
    agent = C.add_agent("svc-1", register=False)
    enrol("svc-1", token, "--agent", agent.endpoint, path=agent.dir)     # the agent connects at once
    C.wait_converged()
    old = agent.key
    out, _ = kc.keyclone("rotate", "--token", token, "--overlap", "1h", "--dir", agent.dir, "--root", ROOT,
                         "--agent", agent.endpoint)
    m = re.match(r"svc-1 now uses its new key ([0-9A-F]{8}) \(seq (\d+)\)", out)
    kc.check(m, out)
    new = public_key(os.path.join(agent.dir, "node"))
    kc.check(new != old and public_key(os.path.join(agent.dir, "node.old")) == old, "the files were swapped")
    C.wait_converged()
    late = C.add_agent("late-svc")                  # a sync from 0 checks it too
    C.wait_converged()
    for other in C.agents:
        if other.status()["state"] == "fresh":
            looked = other.lookup(new)
            kc.check(looked["status"] == "trusted" and looked["name"] == "svc-1" and looked["tags"] == ["role=svc"],
                     (other.name, looked))
            ending = other.lookup(old)
            kc.check(ending["status"] == "trusted" and 0 < ending["not_after"] - time.time() <= 3601,
                     (other.name, ending))
    kc.check(late.lookup(new)["status"] == "trusted", "the late agent trusts the rotated key")
    log, _ = C.cli("log", "--name", "svc-1")
    kc.check("rotate by grant, signed with the token of grant" in log, log)
    kc.wait_for(lambda: "this node's key changed" in agent.log_text(), 20, what="the agent to connect with it")

    # refused: a node whose name the grant does not cover, a rotation
    # submitted by another key than the one it replaces
    web1 = next(a for a in C.agents if a.name == "web-1")
    _, err = kc.keyclone("rotate", "--token", token, "--dir", web1.dir, "--root", ROOT, expect=1)
    kc.check("name 'web-1' does not match grant" in err, err)
    kc.check(not os.path.exists(os.path.join(web1.dir, "node.old")), "web-1's key stays")
    svc2 = C.add_agent("svc-2", register=False)
    enrol("svc-2", token, "--agent", svc2.endpoint, path=svc2.dir)
    C.wait_converged()
    signed = os.path.join(C.root_dir, "svc-2.kcx")
    out, _ = kc.keyclone("rotate", "--token", token, "--out", signed, "--dir", svc2.dir, "--root", ROOT)
    kc.check(out.startswith(f"wrote {signed}: the rotation of svc-2"), out)
    _, err = C.cli("submit", signed, expect=1)
    kc.check("a rotation by grant comes from the key it replaces" in err, err)
    # once svc-2's key is revoked, the rotation is refused by the server, and
    # by every agent when a rogue server serves it
    C.cli("revoke", svc2.key, "--operator", "op1")
    svc2.stop()
    C.agents.remove(svc2)
    C.wait_converged()
    watcher = C.agents[0]
    seq, log_size = watcher.status()["seq"], len(watcher.log_text())
    C.stop_server()
    rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "extend", signed],
                     log=os.path.join(C.root_dir, "rogue-rotation.log"))
    try:
        kc.wait_for(lambda: "replaces" in watcher.log_text()[log_size:], 20, what="the agent to refuse the rotation")
        kc.check(re.search(r"the key a grant rotation replaces, [0-9A-F]{8}, is not registered",
                           watcher.log_text()[log_size:]), watcher.log_text()[log_size:])
        kc.check(watcher.status()["seq"] == seq, watcher.status())
    finally:
        kc.stop(rogue)
    C.start_server()
    C.wait_converged(timeout=60)


if __name__ == "__main__":
    kc.main([test_setup, test_a_token_registers_nodes_without_an_operator, test_what_a_grant_does_not_allow_is_refused,
             test_uses_run_out_and_agents_count_them, test_a_rogue_server_cannot_exceed_or_forge,
             test_expired_and_revoked_grants, test_a_token_rotates_a_node])
