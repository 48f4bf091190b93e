#!/usr/bin/python3
"""A rogue server on the real endpoints: a wrong CURVE key, a forged batch, a
rolled-back version, a replayed old batch, a broken chain, badly signed
heads, a log shorter than the agent's, old heads replayed with the real head
key, a forked head for the agent's own sequence, a snapshot replaying one
batch a thousand times. The agent rejects each with the reason in its log,
goes stale (never fresh) while the rogue serves, its cache is unchanged,
and it recovers with the real server. The forked head, with the agent's
own head for that sequence, is a proof of equivocation: the agent refuses
that server until an operator removes the proof (test_witness.py)."""
import hashlib
import os
import signal
import sqlite3
import time

import kc
from cluster import Cluster

C = Cluster(server_options=["--heartbeat", "200"])
SCENARIOS = [
    ("wrong-key", "check that the root's server key is its key"),
    ("forged", "bad signature by operator"),
    ("rollback", "not above the stored version"),
    ("replay", "not above the stored version"),
    ("broken-chain", "broken chain"),
    ("bad-head", "head signature does not verify"),
    ("rolled-back", "behind this cache (seq"),
    ("old-heads", "older than one already accepted"),
    ("forked-head", "EQUIVOCATED"),
]


def cache_digest(agent):
    """The cache's contents: every bucket and where it stands (not the
    last head, which a fresh head legitimately replaces)."""
    db = sqlite3.connect(f"file:{agent.cache}?mode=ro", uri=True)
    digest = hashlib.sha256()
    for table in ("key_buckets", "name_buckets"):
        for bucket, data in db.execute(f"SELECT bucket, data FROM {table} ORDER BY bucket"):
            digest.update(bucket.to_bytes(4, "big") + data)
    for row in db.execute("SELECT seq, chain, keys, revoked FROM state"):
        digest.update(repr(row).encode())
    db.close()
    return digest.hexdigest()


def test_start():
    C.start_server()
    agent = C.add_agent(options=["--stale-after", "1000"])
    C.burst(20, records=5)
    C.wait_converged()
    kc.check(agent.status()["keys"] == 101, agent.status())


def make_test(scenario, expected):
    def test():
        agent = C.agents[0]
        before = cache_digest(agent)
        seq = agent.status()["seq"]
        log_size = len(agent.log_text())
        C.stop_server()
        rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, scenario],
                         log=os.path.join(C.root_dir, f"rogue-{scenario}.log"))
        try:
            kc.wait_for(lambda: expected in agent.log_text()[log_size:], 20,
                        what=f"the agent to log '{expected}'")
            # stale, never fresh, while the rogue serves (stale-after is 1 s)
            kc.wait_for(lambda: agent.status()["state"] == "stale", 5, what="the agent to go stale")
            for _ in range(10):
                kc.check(agent.status()["state"] == "stale", agent.status())
                time.sleep(0.05)
            kc.check(agent.proc.poll() is None, "the agent died")
            kc.check(cache_digest(agent) == before, "the cache changed")
            kc.check(agent.status()["seq"] == seq, agent.status())
        finally:
            kc.stop(rogue)
        C.start_server()
        if scenario == "forked-head":
            # The server is refused for good; the operator, having dealt
            # with it, removes the proof and restarts the agent
            kc.check(agent.status()["equivocations"] == 1, agent.status())
            agent.stop()
            os.unlink(agent.cache + ".equivocation")
            agent.start()
        C.wait_converged(timeout=60)
        kc.check(cache_digest(agent) == before, "the cache changed after recovery")
    test.__name__ = f"test_{scenario.replace('-', '_')}"
    return test


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


def test_replayed_snapshot_is_refused_with_bounded_memory():
    """A server holding the real keys replays one valid 10,000-record batch
    in a sync from 0 (a correct chain for each copy), a thousand times: the
    agent refuses the second copy as it arrives, never holds the rest, and
    keeps running (under a 2 GiB address-space limit, as on a small box)."""
    R = Cluster(server_options=["--heartbeat", "200"])
    R.start_server()
    R.burst(1, records=10000, prefix="big")
    agent = R.add_agent(start=False)
    R.stop_server()
    rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), R.dir, "replay-snapshot"],
                     log=os.path.join(R.root_dir, "rogue.log"))
    try:
        # Under ASan the shadow memory needs terabytes of address space: the
        # limit only applies to normal builds (the peak RSS is checked anyway)
        limit = [] if "ASAN_OPTIONS" in os.environ else ["prlimit", f"--as={2 << 30}"]
        agent.proc = kc.spawn(limit + [os.path.join(kc.BIN, "keyclone-agent"),
                                       "--dir", agent.dir, "--root", os.path.join(R.dir, "root")], log=agent.log)
        kc.wait_for(lambda: "rejected a snapshot" in agent.log_text(), 30,
                    what="the agent to refuse the replayed snapshot")
        text = agent.log_text()
        kc.check("batch 2:" in text and "not above the stored version" in text, text)
        time.sleep(0.5)
        kc.check(agent.proc.poll() is None, "the agent died:\n" + text)
        peak = peak_rss_mib(agent.proc.pid)
        print(f"    refused at the second copy; agent peak RSS {peak:.0f} MiB")
        kc.check(peak < (400 if limit == [] else 200), f"the agent's peak RSS was {peak:.0f} MiB")
        kc.check(agent.status()["seq"] == 0, agent.status())
    finally:
        kc.stop(rogue)
        agent.stop()


def test_a_late_end_keeps_the_batches():
    """A new agent's whole first sync arrives, verified and chained, but the
    END head is 20 minutes old by its clock (a starved process, a slow
    link): the agent keeps the batches and waits for a fresh head instead of
    starting again from 0; with the real server back it is fresh at once."""
    agent = C.add_agent(name="late", start=False, options=["--stale-after", "1000"])
    status = C.server_status()
    C.stop_server()
    rogue = kc.spawn([os.path.join(kc.TESTS, "kc_rogue"), C.dir, "late-end"],
                     log=os.path.join(C.root_dir, "rogue-late-end.log"))
    try:
        agent.start()
        kc.wait_for(lambda: "batches kept" in agent.log_text(), 20, what="the agent to keep the batches")
        st = agent.status()
        kc.check(st["seq"] == status["seq"] and st["chain"] == status["chain"] and st["state"] != "fresh", st)
        kc.check(st["keys"] == status["keys"], st)
    finally:
        kc.stop(rogue)
    C.start_server()
    st = agent.wait_seq(status["seq"], timeout=20)
    kc.check(st["state"] == "fresh", st)
    kc.check(agent.log_text().count("synced seq 0 ->") == 1, agent.log_text())


def test_still_works_after_all_that():
    C.burst(5, records=1, prefix="after")
    status = C.wait_converged()
    kc.check(C.agents[0].status()["keys"] == status["keys"] - 0, C.agents[0].status())
    text = C.agents[0].log_text()
    kc.check(text.count("rejected") >= 5, text[-3000:])


kc.main([test_start] + [make_test(s, e) for s, e in SCENARIOS] + [test_a_late_end_keeps_the_batches,
                                                                   test_still_works_after_all_that,
                                                                   test_replayed_snapshot_is_refused_with_bounded_memory])
