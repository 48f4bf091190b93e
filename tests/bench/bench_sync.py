#!/usr/bin/python3
"""bench_sync - the speed figures of issue 3 from one run on this box, each
beside the peer it is judged against, measured in the same run:

  a. cold sync of 100,000 and 1,000,000 keys (registered in batches of
     10,000) into a fresh agent, beside a raw sqlite insert of as many rows
     (build/tests/raw_sqlite) and a raw ZeroMQ CURVE transfer of as many bytes
     (build/tests/raw_transfer);
  b. register -> applied on all of 20 agents, p50/p90/p99/max
     (build/tests/kc_latency, one registration at a time);
  d. restart of an agent holding 1,000,000 keys that missed 100;
  e. RSS of server and agent at 1,000,000 keys.
Part c (10,000 updates/s to 50 agents) is bench_sync_fanout.py.

The box's speed is printed before and after (build/tests/raw_verify: raw
Ed25519 verify, the unit every agent and the server pay per batch), with the
CPU other processes used meanwhile: this VM's speed varies by 2x over an
hour with nothing inside it to show why.

Every agent runs with --check-interval 0 (no integrity check during timing).
Set KC_BENCH_SYNC to a subset of "abde" (d and e need a) to run part of it.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq                                  # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402

PARTS = os.environ.get("KC_BENCH_SYNC", "abde")
AGENT_OPTIONS = ["--check-interval", "0"]
COLD_RUNS = 3
RESTART_RUNS = 3
HZ = os.sysconf("SC_CLK_TCK")
BASELINE_VERIFY = 27366                     # perf-baseline section 1, idle box of this kind
MIB = 1024 * 1024


#   --- Output -----------------------------------------------------------------

def line(figure, value, target="", verdict=""):
    print(f"  {figure:<48} {value:<32} {target:<20} {verdict}".rstrip(), flush=True)


def note(text):
    print(f"    {text}", flush=True)


def verdict(value, limit, lower_is_better=True):
    met = value <= limit if lower_is_better else value >= limit
    return f"{'met' if met else 'MISSED'} ({value / limit:.2f}x target)"


def spread(values, scale=1.0, digits=3):
    ordered = sorted(values)
    middle = ordered[len(ordered) // 2]
    if len(ordered) == 1:
        return middle, f"{middle * scale:.{digits}f}"
    return middle, (f"{middle * scale:.{digits}f} [{ordered[0] * scale:.{digits}f}-"
                    f"{ordered[-1] * scale:.{digits}f}]")


#   --- Processes -----------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def memory(pid):
    """(VmRSS, VmHWM) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for text in f:
            name, _, rest = text.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024 / MIB
    return values["VmRSS"], values["VmHWM"]


def box_idle(seconds=1.0):
    """Fraction of both cores idle over a short window, before we start."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def status_now(agent, timeout_ms=2000):
    """An agent's STATUS, or None. Unlike Agent.status() this reconnects
    every 2 ms, not libzmq's default 100 ms, so an agent that has just bound
    its endpoint (or left a stale socket file) is reached at once."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RECONNECT_IVL, 2)
    socket.connect(agent.endpoint)
    socket.send(b"STATUS")
    reply = socket.recv_multipart() if socket.poll(timeout_ms) else None
    socket.close()
    return json.loads(reply[1]) if reply and reply[0] == b"OK" else None


def poll_status(agent, done, timeout, interval=0.005):
    """Polls an agent's STATUS until done(status); returns that status."""
    deadline = time.monotonic() + timeout
    while True:
        status = status_now(agent)
        if status and done(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"agent {agent.name} not done after {timeout} s")
        time.sleep(interval)


def remove_agent(cluster, agent):
    agent.stop()
    cluster.agents.remove(agent)
    shutil.rmtree(agent.dir, ignore_errors=True)


def store_volume(cluster):
    """(batches, bytes of all batches, mean record bytes) from the server's store."""
    db = sqlite3.connect(f"file:{cluster.dir}/server/store.db?mode=ro", uri=True)
    try:
        batches, size = db.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM batches").fetchone()
        record = db.execute("SELECT coalesce(avg(length(record)), 0) FROM keys").fetchone()[0]
    finally:
        db.close()
    return batches, size, record


def helper(name, *args, timeout=600):
    out, _ = kc.run([os.path.join(kc.TESTS, name), *map(str, args)], timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


#   --- a. Cold sync -------------------------------------------------------------

def cold_sync(cluster, server, keep=False):
    """One fresh agent synced from 0; returns its figures (and the agent if kept)."""
    agent = cluster.add_agent(register=False, start=False, options=AGENT_OPTIONS)
    started = time.monotonic()
    agent.start()
    status = poll_status(agent, lambda s: s["seq"] >= server["seq"] and not s["syncing"], 120)
    wall = time.monotonic() - started
    kc.check(status["seq"] == server["seq"] and status["chain"] == server["chain"]
             and status["keys"] == server["keys"], f"cold sync ended at {status}, server {server}")
    match = re.search(r"synced seq 0 -> (\d+): (\d+) batches, (\d+) records in (\d+) ms", agent.log_text())
    kc.check(match and int(match.group(3)) == server["keys"], "no 'synced' line for the whole directory")
    figures = {"synced_s": int(match.group(4)) / 1000, "caught_up_s": status["caught_up_ms"] / 1000,
               "wall_s": wall, "build_s": status.get("last_sync_build_ms", 0) / 1000}
    if keep:
        return figures, agent
    remove_agent(cluster, agent)
    return figures, None


def cold_section(cluster, keys, keep=False):
    server = cluster.server_status()
    kc.check(server["keys"] == keys, f"server holds {server['keys']} keys, expected {keys}")
    runs, agent = [], None
    for run in range(COLD_RUNS):
        figures, agent = cold_sync(cluster, server, keep=keep and run == COLD_RUNS - 1)
        runs.append(figures)
    target = 0.4 if keys <= 100000 else 3.0
    synced, text = spread([r["synced_s"] for r in runs])
    line(f"cold sync {keys:,} keys (agent's 'synced in')", f"{text} s", f"target <= {target:g} s",
         verdict(synced, target))
    _, text = spread([r["caught_up_s"] for r in runs])
    line("  caught_up_ms (agent start -> synced)", f"{text} s")
    _, text = spread([r["build_s"] for r in runs])
    line("  of which writing the cache file (at END)", f"{text} s")
    wall, text = spread([r["wall_s"] for r in runs])
    line("  wall, spawn -> STATUS at the server's seq", f"{text} s", f"target <= {target:g} s",
         verdict(wall, target))
    batches, size, record = store_volume(cluster)
    raw = {}
    for order in ("random", "sorted"):
        results = [helper("raw_sqlite", os.path.join(cluster.root_dir, "raw.db"), keys,
                          round(record) + 8, *(["--sorted"] if order == "sorted" else []))
                   for _ in range(COLD_RUNS if keys <= 100000 else 1)]
        raw[order], text = spread([r["seconds"] for r in results])
        line(f"raw sqlite insert {keys:,} rows, {'key order' if order == 'sorted' else 'random order'}",
             f"{text} s ({keys / raw[order]:,.0f}/s)", "", f"agent takes {synced / raw[order]:.2f}x this")
    transfer = helper("raw_transfer", size, 1024 * 1024, 3)
    ratio = synced / transfer['seconds']
    line(f"raw ZeroMQ CURVE transfer, {size / 1e6:.1f} MB",
         f"{transfer['seconds']:.3f} s ({transfer['mb_per_s']:.0f} MB/s)",
         "target: agent <= 5x" if keys >= 1000000 else "",
         f"agent takes {ratio:.1f}x this" + (f": {verdict(ratio, 5.0)}" if keys >= 1000000 else ""))
    note(f"{batches} batches, {size / 1e6:.1f} MB, records {record:.0f} B on average. Raw sqlite rows: 32-byte "
         f"key, seq, {round(record)}-byte blob, WITHOUT ROWID, WAL, one transaction, "
         f"{'3 runs' if keys <= 100000 else '1 run'}. Raw transfer: ROUTER -> DEALER, tcp loopback, "
         f"CURVE, 1 MiB messages, median of 3")
    return agent


#   --- d, e. Restart, memory ----------------------------------------------------------

def restart(cluster, agent, missed, run):
    agent.stop(signal.SIGKILL)
    result = cluster.burst(missed, records=1, window=missed, prefix=f"missed-{run}")
    kc.check(result["accepted"] == missed, result)
    server = cluster.server_status()
    started = time.monotonic()
    agent.start()
    status = poll_status(agent, lambda s: s["seq"] >= server["seq"] and not s["syncing"], 60)
    wall = time.monotonic() - started
    kc.check(status["seq"] == server["seq"] and status["chain"] == server["chain"]
             and status["keys"] == server["keys"] and status["last_sync_batches"] == missed,
             f"restart ended at {status}, server {server}")
    return status["caught_up_ms"] / 1000, status["last_sync_ms"] / 1000, wall


def restart_section(cluster, agent):
    runs = [restart(cluster, agent, 100, run) for run in range(RESTART_RUNS)]
    caught, text = spread([r[0] for r in runs], 1000, 0)
    line("restart, 1,000,000 keys, missed 100: caught_up_ms", f"{text} ms", "target <= 100 ms",
         verdict(caught * 1000, 100))
    _, text = spread([r[1] for r in runs], 1000, 0)
    line("  of which the sync itself (last_sync_ms)", f"{text} ms")
    wall, text = spread([r[2] for r in runs], 1000, 0)
    line("  wall, spawn -> STATUS at the server's seq", f"{text} ms", "target <= 100 ms",
         verdict(wall * 1000, 100))
    note(f"kill -9, then 100 single-record registrations, then restart; {RESTART_RUNS} runs, median [min-max]")


def memory_line(what, pid, guide=False):
    """VmRSS and VmHWM; for the server, against the Guide's clone server
    (142 MiB holding 100,000 keys)."""
    rss, hwm = memory(pid)
    line(what, f"VmRSS {rss:6.1f} MiB  VmHWM {hwm:6.1f} MiB", "Guide: 142 MiB @100k" if guide else "",
         f"{rss / 142:.2f}x the Guide's server" if guide else "")


#   --- b. Latency ---------------------------------------------------------------------

def latency_section():
    cluster = Cluster(server_options=["--read", "any"])
    cluster.start_server()
    for _ in range(20):
        cluster.add_agent(register=False, options=AGENT_OPTIONS)
    cluster.wait_converged(timeout=60)
    count, warmup = 1000, 20
    args = ["--root", os.path.join(cluster.dir, "root"), "--operator", cluster.operator(0),
            "--count", count, "--warmup", warmup]
    for agent in cluster.agents:
        args += ["--events", agent.events]
    cpu_agents = [cpu_seconds(a.proc.pid) for a in cluster.agents]
    cpu_server = cpu_seconds(cluster.server.pid)
    started = time.monotonic()
    result = helper("kc_latency", *args)
    seconds = time.monotonic() - started
    per_agent = sum(cpu_seconds(a.proc.pid) - c for a, c in zip(cluster.agents, cpu_agents)) / 20 / (count + warmup)
    per_server = (cpu_seconds(cluster.server.pid) - cpu_server) / (count + warmup)
    line("register -> applied on all 20 agents, p50", f"{result['p50_ms']:.2f} ms")
    line("  p90", f"{result['p90_ms']:.2f} ms")
    line("  p99", f"{result['p99_ms']:.2f} ms", "target <= 10 ms", verdict(result["p99_ms"], 10))
    line("  max", f"{result['max_ms']:.2f} ms")
    line("  first of 20 agents, p50 / p99", f"{result['first_p50_ms']:.2f} / {result['first_p99_ms']:.2f} ms")
    line("  server OK (committed, fsynced), p50 / p99", f"{result['ack_p50_ms']:.2f} / {result['ack_p99_ms']:.2f} ms")
    line("  CPU per registration, each agent / server", f"{per_agent * 1e6:.0f} / {per_server * 1e6:.0f} us",
         "", f"{(20 * per_agent + per_server) * 1e3:.1f} ms of CPU for 2 cores")
    note(f"{count} registrations one at a time after {warmup} warm-ups, timed in C (kc_latency) from just "
         f"before SUBMIT to the 20th 'registered' event; {seconds:.1f} s")
    kc.check(result["lost"] == 0, f"{result['lost']} registrations did not reach every agent")
    for agent in cluster.agents:
        agent.stop()
    cluster.stop_server()


#   --- Main -------------------------------------------------------------------------

def cpu_use():
    """(wall, CPU seconds busy on the whole box, CPU seconds of this process
    and every child it has waited for)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    times = os.times()
    return (time.monotonic(), (sum(fields) - fields[3] - fields[4]) / HZ,
            times.user + times.system + times.children_user + times.children_system)


def box_speed():
    """Raw Ed25519 verifications per second on one core now (raw_verify)."""
    return helper("raw_verify", 0.3)["verifies_per_s"]


def header(what):
    """Prints what runs, how busy the box was before it and how fast it is;
    returns a mark for footer()."""
    idle = box_idle()
    speed = box_speed()
    print(f"{what} on {os.cpu_count()} cores; box {idle * 100:.0f}% idle before the run, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    note(f"box speed now: raw Ed25519 verify {speed:,.0f}/s ({1e6 / speed:.1f} us) on one core, "
         f"{speed / BASELINE_VERIFY:.2f}x perf-baseline's {BASELINE_VERIFY:,}/s")
    if idle < 0.9:
        note("WARNING: something else is using the CPU; the figures below are pessimistic")
    return cpu_use()


def footer(name, mark):
    """How long the run took and how much CPU others used meanwhile (kernel
    threads doing our I/O count as others)."""
    now = cpu_use()
    wall, others = now[0] - mark[0], (now[1] - mark[1]) - (now[2] - mark[2])
    share = others / (wall * os.cpu_count())
    speed = box_speed()
    print(f"{name}: {wall:.0f} s; CPU used by other processes meanwhile {max(0.0, others):.1f} s "
          f"({max(0.0, share) * 100:.0f}% of the box); raw Ed25519 verify at the end {speed:,.0f}/s "
          f"({speed / BASELINE_VERIFY:.2f}x perf-baseline)", flush=True)
    if share > 0.05:
        note("WARNING: other processes competed for the CPU during the run; the figures are pessimistic")


def main():
    mark = header("sync: issue 3 speed figures a, b, d, e")
    if "a" in PARTS:
        cluster = Cluster(server_options=["--read", "any"])
        cluster.start_server()
        print("a. cold sync into a fresh agent (verify + persist), keys registered in batches of 10,000; "
              f"median [min-max] of {COLD_RUNS}", flush=True)
        setup = time.monotonic()
        cluster.burst(10, records=10000, window=4, prefix="bulk-a", timeout=600)
        cold_section(cluster, 100000)
        server_pid = cluster.server.pid
        memory_line("server at 100,000 keys, after 3 cold syncs", server_pid, guide=True)
        registered = time.monotonic()
        cluster.burst(90, records=10000, window=4, prefix="bulk-b", timeout=900)
        note(f"registering 900,000 more keys took {time.monotonic() - registered:.1f} s (setup, not timed)")
        agent = cold_section(cluster, 1000000, keep=True)
        if "e" in PARTS:
            print("e. memory at 1,000,000 keys", flush=True)
            memory_line("server, after 3 cold syncs of 1,000,000", server_pid, guide=True)
            memory_line("agent, right after its cold sync", agent.proc.pid)
            time.sleep(3)
            cluster.burst(100, records=1, window=100, prefix="steady")
            time.sleep(1)
            memory_line("server, steady (3 s idle + 100 updates)", server_pid, guide=True)
            memory_line("agent, steady (3 s idle + 100 updates)", agent.proc.pid)
        if "d" in PARTS:
            print("d. restart of an agent holding 1,000,000 keys that missed 100", flush=True)
            restart_section(cluster, agent)
            if "e" in PARTS:
                memory_line("agent, after restart and catch-up", agent.proc.pid)
        note(f"parts a, d, e took {time.monotonic() - setup:.0f} s")
        agent.stop()
        cluster.stop_server()
    if "b" in PARTS:
        print("b. register -> applied on all of 20 agents", flush=True)
        latency_section()
    footer("bench_sync", mark)


if __name__ == "__main__":
    main()
