#!/usr/bin/python3
"""Recovery: kill -9 of the server in a stream of submissions, SIGSTOP of an
agent during a 100,000-record burst, kill -9 of an agent, and a corrupted
cache. Nothing acknowledged is lost, nothing is half-applied, agents resync
from their last good sequence."""
import json
import os
import signal
import subprocess
import time

import kc
from cluster import Cluster

C = Cluster(server_options=["--heartbeat", "200"])


def keys_of(path):
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def server_keys():
    out, _ = C.cli("list", "--json")
    return {entry["record"]["key"] for entry in json.loads(out)}


def test_start():
    C.start_server()
    C.add_agent("steady")
    C.add_agent("sleeper")
    C.add_agent("crasher")
    C.add_agent("damaged", options=["--check-interval", "300"])
    C.wait_converged()


def test_kill_9_server_mid_stream():
    keys_file = os.path.join(C.root_dir, "stream-keys.txt")
    acks_file = os.path.join(C.root_dir, "stream-acks.txt")
    before = C.server_status()["seq"]
    args = [os.path.join(kc.TESTS, "kc_burst"), "--root", os.path.join(C.dir, "root"),
            "--operator", C.operator(0), "--batches", "400", "--records", "10", "--window", "8",
            "--rate", "400", "--prefix", "stream", "--keys-out", keys_file, "--acks-out", acks_file,
            "--timeout", "3000"]
    burst = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kc.wait_for(lambda: os.path.exists(acks_file) and len(open(acks_file).read().split()) >= 100,
                20, what="100 acknowledged batches")
    os.kill(C.server.pid, signal.SIGKILL)
    C.server.wait()
    burst.communicate(timeout=30)
    acked = sorted(int(x) for x in open(acks_file).read().split())
    kc.check(len(acked) >= 100, f"only {len(acked)} acks")
    C.start_server()
    status = C.server_status()
    # every acknowledged batch is in the log
    kc.check(status["seq"] >= acked[-1], f"server at {status['seq']}, acked up to {acked[-1]}")
    # batch i got seq before + 1 + i: each is either whole or absent
    present = server_keys()
    keys = keys_of(keys_file)
    whole = 0
    for i in range(400):
        batch = set(keys[i * 10:(i + 1) * 10])
        inside = len(batch & present)
        kc.check(inside in (0, 10), f"batch {i} half-applied: {inside} of 10 keys")
        if before + 1 + i in acked:
            kc.check(inside == 10, f"acknowledged batch {i} (seq {before + 1 + i}) lost")
        whole += inside == 10
    kc.check(status["seq"] == before + whole, f"log has {status['seq'] - before} new batches, "
             f"{whole} complete ones")
    # agents continue from where they were, without a full snapshot
    C.wait_converged()
    for agent in C.agents:
        st = agent.status()
        kc.check(st["rebuilds"] == 0, f"{agent.name} rebuilt its cache")
        kc.check(st["last_sync_from"] > 0 or st["syncs"] == 1,
                 f"{agent.name} resynced from zero: {st}")
        kc.check(agent.log_text().count("synced seq 0 -> ") == 1,
                 f"{agent.name} synced from zero again:\n" + agent.log_text()[-1500:])


def test_sigstop_agent_during_100k_burst():
    sleeper = C.agents[1]
    # a small publisher queue so a stopped agent really loses updates
    C.stop_server()
    with open(os.path.join(C.dir, "server.cfg"), "w") as f:
        f.write("server\n    sndhwm = 20\n    heartbeat = 200\n")
    C.start_server()
    C.wait_converged()
    os.kill(sleeper.proc.pid, signal.SIGSTOP)
    try:
        result = C.burst(2000, records=50, window=32, prefix="burst")
        kc.check(result["accepted"] == 2000 and result["records"] == 100000, result)
        time.sleep(1.0)
    finally:
        os.kill(sleeper.proc.pid, signal.SIGCONT)
    status = C.wait_converged(timeout=120)
    text = sleeper.log_text()
    kc.check("gap in updates" in text or "missed updates" in text,
             "the stopped agent did not detect a gap:\n" + text[-2000:])
    for agent in C.agents:
        kc.check(agent.status()["keys"] == status["keys"], f"{agent.name} key count")
    os.remove(os.path.join(C.dir, "server.cfg"))


def test_kill_9_agent_fetches_only_what_it_missed():
    crasher = C.agents[2]
    seq = crasher.wait_seq(C.server_status()["seq"])["seq"]
    crasher.stop(signal.SIGKILL)
    result = C.burst(100, records=1, window=16, prefix="missed")
    kc.check(result["accepted"] == 100, result)
    crasher.start()
    st = crasher.wait_seq(seq + 100)
    kc.check(st["last_sync_from"] == seq, f"resynced from {st['last_sync_from']}, not {seq}")
    kc.check(st["last_sync_batches"] == 100 and st["last_sync_records"] == 100,
             f"fetched {st['last_sync_batches']} batches, {st['last_sync_records']} records")
    kc.check(st["rebuilds"] == 0, st)


def test_corrupt_cache_is_rebuilt():
    damaged = C.agents[3]
    status = C.wait_converged()
    size = os.path.getsize(damaged.cache)
    kc.check(size > 1 << 20, f"cache only {size} bytes")
    # Damage on a disk at rest: the agent folds its WAL into the file within
    # a second of its last write; pages still in the WAL would hide (and then
    # overwrite) the scribbles below
    time.sleep(2)
    with open(damaged.cache, "r+b") as f:           # scribble over pages in the middle
        for offset in (size // 3, size // 2):
            f.seek(offset - offset % 16384)
            f.write(os.urandom(16384))
    kc.wait_for(lambda: "rebuilding it from the server" in damaged.log_text(), 20,
                what="the agent to notice the damage")
    st = damaged.wait_seq(status["seq"])
    kc.check(st["rebuilds"] >= 1 and st["keys"] == status["keys"], st)
    kc.check(damaged.proc.poll() is None, "the agent died")
    kc.check(any(name.startswith("agent.db.damaged-") for name in os.listdir(damaged.dir)),
             "the damaged file was not kept aside")
    entry = damaged.lookup(C.agents[0].key)
    kc.check(entry["status"] == "trusted", entry)
    # a damaged header found at start-up is handled the same way
    damaged.stop()
    with open(damaged.cache, "r+b") as f:
        f.write(b"not a database at all" * 8)
    for side in ("-wal", "-shm"):
        if os.path.exists(damaged.cache + side):
            os.remove(damaged.cache + side)
    damaged.start()
    st = damaged.wait_seq(status["seq"])
    kc.check(st["keys"] == status["keys"], st)
    kc.check(damaged.log_text().count("rebuilding") >= 2, damaged.log_text()[-1500:])


def test_everyone_still_converged():
    C.wait_converged()
    for agent in C.agents:
        kc.check(agent.proc.poll() is None, f"{agent.name} died")


kc.main([test_start, test_kill_9_server_mid_stream, test_sigstop_agent_during_100k_burst,
         test_kill_9_agent_fetches_only_what_it_missed, test_corrupt_cache_is_rebuilt,
         test_everyone_still_converged])
