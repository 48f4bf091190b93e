#!/usr/bin/python3
"""A single server restored from an older backup (issue 14's single-server
part): agents that synced past the backup keep their caches (a revocation is
among what the server lost), say so in their status and log, acknowledge
where they stand so the server's status lists them AHEAD, and `keyclone
recover` on one of those nodes gives the server back the entries it lost, at
the sequences they had: every agent is fresh again and an agent started from
nothing sees the revocation. A server whose log went another way after the
restore (a fork) is refused, with nothing submitted."""
import os
import re
import sqlite3
import time

import kc
from cluster import Cluster

C = Cluster()
STORE = os.path.join(C.dir, "server", "store.db")


def register(name):
    key = kc.keyclone("keygen", name, "--dir", C.root_dir)[0].strip()
    C.cli("register", name, "--key", key)
    return key


def backup(path):
    """What operator.md section 8 does (sqlite's online backup)."""
    source, target = sqlite3.connect(STORE), sqlite3.connect(path)
    source.backup(target)
    source.close()
    target.close()


def restore(path):
    C.stop_server()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(STORE + suffix):
            os.unlink(STORE + suffix)
    backup_copy = sqlite3.connect(path)
    target = sqlite3.connect(STORE)
    backup_copy.backup(target)
    backup_copy.close()
    target.close()
    C.start_server()


def recover(agent, expect=0):
    return kc.keyclone("recover", "--dir", C.dir, "--agent", agent.endpoint, expect=expect)


def test_restored_server_gets_back_what_it_lost():
    C.start_server()
    first, second = C.add_agent("first"), C.add_agent("second")
    fresh = C.add_agent("fresh", start=False)         # registered now, started after the restore
    victim = register("victim")
    C.wait_converged([first, second])
    saved = os.path.join(C.root_dir, "store-1.bak")
    backup(saved)
    at_backup = C.server_status()["seq"]
    register("later")
    C.cli("revoke", "victim")
    before = C.wait_converged([first, second])
    kc.check(before["seq"] == at_backup + 2, before)

    restore(saved)
    kc.check(C.server_status()["seq"] == at_backup, "the restored server is behind")
    for agent in (first, second):
        st = kc.wait_for(lambda a=agent: (lambda s: s if s.get("server_behind") == at_backup else None)(a.status()),
                         10, what=f"agent {agent.name} to see the server behind")
        # never rolled back: the revocation the server lost stays in force here
        kc.check(st["seq"] == before["seq"] and st["state"] == "stale", st)
        kc.check(agent.lookup(victim)["status"] == "revoked", "the cache kept the revocation")
        text = kc.keyclone("status", "--agent", agent.endpoint, "--dir", C.dir)[0]
        kc.check(f"the server's log ends at seq {at_backup}, behind this cache" in text, text)
        kc.check(f"the server's log ends at seq {at_backup}, behind this cache (seq {before['seq']})"
                 in agent.log_text(), agent.log_text())
    text = kc.wait_for(lambda: (lambda t: t if "2 AHEAD of this server" in t else None)(C.cli("status", "--server")[0]),
                       10, what="the server to list both agents ahead")
    kc.check(re.search(rf"^    first +[0-9A-F]{{8}}  seq {before['seq']} +AHEAD ", text, re.M), text)
    time.sleep(2.5)                                    # several acknowledgements later: said once per agent
    said = C.server_log_text().count(f"holds seq {before['seq']}, beyond this server's log (seq {at_backup})")
    kc.check(said == 2, f"{said} warnings for 2 agents")
    # an agent started from nothing now follows the server's log: the revocation is lost there
    fresh.start()
    kc.check(fresh.wait_seq(at_backup)["seq"] == at_backup and fresh.lookup(victim)["status"] == "trusted",
             "the restored log lacks the revocation")

    out, _ = recover(first)
    kc.check(out.startswith(f"gave the server back 2 entries (seq {at_backup + 1} to {before['seq']}) from the "
                            f"agent's history; it is at seq {before['seq']} with chain {before['chain'][:16]}..."),
             out)
    after = C.server_status()
    kc.check(after["seq"] == before["seq"] and after["chain"] == before["chain"], "the same log as before")
    C.wait_converged()
    kc.check(fresh.lookup(victim)["status"] == "revoked", "the revocation is back for everyone")
    kc.check("server_behind" not in first.status(), first.status())
    out, _ = recover(second)
    kc.check(out == f"nothing to recover: the server is at seq {after['seq']}, the agent at {after['seq']}\n", out)
    text = C.cli("status", "--server")[0]
    kc.check("AHEAD" not in text, text)


def test_a_forked_log_is_not_recovered():
    saved = os.path.join(C.root_dir, "store-2.bak")
    backup(saved)
    at_backup = C.server_status()["seq"]
    register("lost-one")
    register("lost-two")
    C.wait_converged()
    ahead = C.agents[0]
    restore(saved)
    kc.wait_for(lambda: ahead.status().get("server_behind") == at_backup, 10, what="the agent to see the restore")
    register("after-restore")                          # the restored log goes another way at the same seq
    _, err = recover(ahead, expect=1)
    kc.check(f"the agent's entries after seq {at_backup + 1} do not continue the server's log" in err
             and "nothing submitted" in err, err)
    kc.check(C.server_status()["seq"] == at_backup + 1, "nothing was submitted")
    # no agent there: unreachable (exit 5), said as such
    _, err = kc.keyclone("recover", "--dir", C.dir, "--agent", f"ipc://{C.root_dir}/nobody.ipc", expect=5)
    kc.check(err.startswith("keyclone recover: the agent: ") and "nothing submitted" not in err, err)
    register("after-that")                             # level with the agent, on another chain
    _, err = recover(ahead, expect=1)
    kc.check(f"the server's log and this node's differ at seq {at_backup + 2}" in err, err)


if __name__ == "__main__":
    kc.main([test_restored_server_gets_back_what_it_lost, test_a_forked_log_is_not_recovered])
