#!/usr/bin/python3
"""bench_sync_fanout - part c of issue 3's speed figures: 10,000
single-record updates/s for 10 s (100,000 batches, kc_burst --rate 10000
--window 256) to 50 agents, then to 5 and to 1 for comparison. For each:
the publisher's sustained rate, whether every agent converged to the
server's seq and chain with every key (zero loss), how far behind the agents
were when the burst ended, the time from the end of the burst until the last
agent converged, the resyncs they needed, and their CPU per applied update.

Physics: every agent verifies every batch's Ed25519 signature, so 50 agents
at 10,000/s need 500,000 verifications/s; this box's 2 cores do ~54,000/s.
The agents cannot keep up in real time here; they must lose nothing and
converge. To measure the publisher as it would run on a machine of its own,
the agents run SCHED_IDLE in this process's scheduling group (they get only
the CPU the server and kc_burst leave) and keep their caches on tmpfs (so
50 caches do not share the disk with the server's fsynced store). Nothing
in the agents is weakened: every batch and head is verified and persisted.
Takes about 5 minutes, most of it 50 agents converging.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402
from bench_sync import (AGENT_OPTIONS, cpu_seconds, footer, header, line, note,  # noqa: E402
                        status_now, verdict)

RATE = 10000
BATCHES = 100000
SNDHWM = 100000
CONVERGE_TIMEOUT = 900


def spawn_in_group(args, log=None, env=None, idle=False):
    """kc.spawn without a new session: the process stays in this scheduling
    autogroup instead of getting an equal share of the CPU as a group of its
    own. With idle it runs SCHED_IDLE, inherited by every thread it makes."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    setup = (lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))) if idle else None
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=setup)
    kc._children.append(proc)
    return proc


def cache_dir():
    """A tmpfs directory for the agents' caches, removed at exit; None if
    there is no /dev/shm (the caches then stay on disk)."""
    if not os.path.isdir("/dev/shm"):
        return None
    path = tempfile.mkdtemp(prefix="kc-bench-", dir="/dev/shm")
    atexit.register(shutil.rmtree, path, True)
    return path


def start(agents, shm):
    saved = kc.spawn
    try:
        kc.spawn = lambda args, log=None, env=None: spawn_in_group(args, log, env, idle=False)
        cluster = Cluster(server_options=["--read", "any"])
        config = os.path.join(cluster.root_dir, "server.cfg")
        with open(config, "w") as f:
            f.write(f"server\n    sndhwm = {SNDHWM}\n")
        cluster.start_server("--config", config)
        kc.spawn = lambda args, log=None, env=None: spawn_in_group(args, log, env, idle=True)
        for i in range(agents):
            cache = ["--cache", os.path.join(shm, f"{os.path.basename(cluster.root_dir)}-{i}.db")] if shm else []
            cluster.add_agent(register=False, options=AGENT_OPTIONS + cache)
    finally:
        kc.spawn = saved
    cluster.wait_converged(timeout=120)
    return cluster


def wait_all(cluster, server, ended):
    """Polls every agent until it is at the server's seq; returns
    {name: (seconds after the burst ended, status)}."""
    converged = {}
    while len(converged) < len(cluster.agents) and time.monotonic() - ended < CONVERGE_TIMEOUT:
        for agent in cluster.agents:
            if agent.name not in converged:
                status = status_now(agent, 500)
                if status and status["seq"] == server["seq"] and not status["syncing"]:
                    converged[agent.name] = (time.monotonic() - ended, status)
        time.sleep(min(0.25, max(0.02, 0.004 * (len(cluster.agents) - len(converged)))))
    return converged


def fanout(agents, shm):
    cluster = start(agents, shm)
    before = {a.name: (cpu_seconds(a.proc.pid), a.status()) for a in cluster.agents}
    cpu_server = cpu_seconds(cluster.server.pid)
    keys_file = os.path.join(cluster.root_dir, "keys.txt")
    result = cluster.burst(BATCHES, records=1, rate=RATE, window=256, prefix="fan", keys_out=keys_file,
                           timeout=900)
    ended = time.monotonic()
    server_cpu = cpu_seconds(cluster.server.pid) - cpu_server
    server = cluster.server_status()
    kc.check(result["accepted"] == BATCHES, result)
    acked = [a["seq"] for a in server["agents"]]    # the server's record of each agent's last ACK
    lag = sorted(server["seq"] - seq for seq in acked + [0] * (agents - len(acked)))
    converged = wait_all(cluster, server, ended)
    with open(keys_file) as f:
        sample = [text.split()[0] for text in f.read().splitlines()[::BATCHES // 20]]
    lost, resyncs, rejected, cpu, applied = 0, 0, 0, 0.0, 0
    for agent in cluster.agents:
        if agent.name not in converged:
            lost += 1
            continue
        status = converged[agent.name][1]
        cpu0, status0 = before[agent.name]
        good = status["chain"] == server["chain"] and status["keys"] == server["keys"]
        lost += not (good and all(agent.lookup(key)["status"] == "trusted" for key in sample))
        resyncs += status["syncs"] - status0["syncs"]
        rejected += status["rejected"]
        cpu += cpu_seconds(agent.proc.pid) - cpu0
        applied += status["applied"] - status0["applied"]
    times = sorted(t for t, _ in converged.values())
    for agent in cluster.agents:
        agent.stop()
    cluster.stop_server()
    return {"rate": result["batches_per_s"], "seconds": result["seconds"], "seq": server["seq"],
            "lost": lost, "resyncs": resyncs, "rejected": rejected,
            "last_s": times[-1] if times else float("inf"), "first_s": times[0] if times else float("inf"),
            "lag_max": lag[-1], "lag_median": lag[len(lag) // 2],
            "cpu_per_update_us": cpu / max(1, applied) * 1e6, "server_us": server_cpu / BATCHES * 1e6}


def report(agents, f):
    print(f"  -- {agents} agent{'s' if agents > 1 else ''}", flush=True)
    line("publisher sustained rate (kc_burst, acked)", f"{f['rate']:,.0f}/s over {f['seconds']:.2f} s",
         f"target >= {RATE:,}/s", verdict(f["rate"], RATE, lower_is_better=False))
    line("zero loss: agents at server seq+chain, all keys", f"{agents - f['lost']}/{agents} (seq {f['seq']:,})",
         "target: all", "met" if not f["lost"] else "MISSED")
    line("agents behind at burst end (their last ACK)", f"median {f['lag_median']:,}, max {f['lag_max']:,} batches")
    line("burst end -> last agent converged", f"{f['last_s']:.2f} s (first {f['first_s']:.2f} s)")
    line("resyncs during the run / batches rejected", f"{f['resyncs']} / {f['rejected']}")
    cores = f["cpu_per_update_us"] * RATE / 1e6
    line("agent CPU per applied update", f"{f['cpu_per_update_us']:.0f} us", "",
         f"{RATE:,}/s needs {cores:.2f} core per agent, {cores * agents:.1f} for {agents}")
    line("server CPU per accepted batch", f"{f['server_us']:.0f} us", "",
         f"{f['server_us'] * RATE / 1e6:.2f} core at {RATE:,}/s")


def main():
    mark = header(f"sync_fanout: issue 3 part c, {RATE:,} single-record updates/s for 10 s "
                     f"({BATCHES:,} batches) to 50, 5 and 1 agents")
    shm = cache_dir()
    lost = 0
    for agents in (50, 5, 1):
        figures = fanout(agents, shm)
        report(agents, figures)
        lost += figures["lost"]
    note(f"agents SCHED_IDLE in the bench's scheduling group, caches on {'tmpfs' if shm else 'disk'}; server "
         f"and kc_burst at normal priority, server store on disk (synchronous=FULL), sndhwm {SNDHWM}; every "
         "agent verifies every batch and head; 20 sampled keys looked up on every agent; convergence polled "
         "every 0.02-0.25 s")
    footer("bench_sync_fanout", mark)
    return 1 if lost else 0                 # a lost update is a bug, not a slow figure


if __name__ == "__main__":
    sys.exit(main())
