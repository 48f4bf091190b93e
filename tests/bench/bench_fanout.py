#!/usr/bin/python3
"""bench_fanout - a revocation fanned out to a fleet: KC_FANOUT_AGENTS
(default 10,000) simulated agents follow one real keyclone-server on this
box, and a key is revoked with `keyclone revoke`.

The agents are build/tests/kc_simagent processes (tests/bench/kc_simagent.c):
each agent has its own CURVE key pair and real connections, syncs from 0
with credit, verifies every batch, END and head itself (no verification is
shared between agents), then closes its snapshot DEALER and keeps one SUB,
so the server holds one connection per agent. No sqlite: that is what lets
one box hold ten thousand of them.

  1. the server starts with its descriptor limit raised to the hard limit
     (it holds a connection per agent), and the target keys are registered;
  2. the peer: KC_FANOUT_PEER agents (default 1,000) connect and sync; then
     KC_FANOUT_TRIALS (default 3) revocations, each timed from `keyclone
     revoke` spawned to each agent having applied the batch that revokes
     the key (CLOCK_REALTIME in both);
  3. the rest of the fleet connects beside them, and the same trials run
     on all;
  4. with mirrors (KC_FANOUT_MIRRORS, default 4; 0: none): the server's
     own fleet leaves, KC_FANOUT_MIRRORS keyclone-mirrors start (each its
     directory, root and CURVE key, following the server, --stale-after
     three heartbeats) and reach the server's seq; then as many agents as
     before join them, in as many kc_simagent processes per mirror
     (2,500 agents a mirror in one process at the defaults: each process
     joins one mirror, as one site's nodes would), and the same trials run
     on them: the server then feeds only the mirrors' connections. The two
     topologies take turns, so neither's agents take CPU from the other's
     trials, and each agent joins once (joining is most of the run);
  5. p50/p99/max over the agents (the median of the trials, and each
     trial), beside the revoke command's own duration, and the mirrored
     fleet's as a ratio of the one on the server; the server's CPU per
     revocation, with and without mirrors (and the mirrors', all of them),
     and per agent joining (two CURVE handshakes and a sync), and the
     mirrors'; memory per connected agent, on the server (VmRSS before any
     agent connected, and with all: the difference over the count) and on
     each mirror (VmRSS once it holds the log, and with its agents: the
     difference over their count); descriptors.

Every simulated agent shares this box's 2 cores with the server and the
others: a revocation's latency here includes N agents' verifications done
on 2 cores, not on N machines. The server's CPU per revocation is the
figure that scales to a real fleet; with mirrors, so is each mirror's (on
a fleet, each on a machine of its own: here all on these 2 cores).

The server's heartbeat is 5 s (KC_FANOUT_HEARTBEAT, ms): every agent
checks every head's signature, and at the default 1 s ten thousand agents'
checks alone would take half of this box, on a fleet each node's own.

Environment: KC_FANOUT_AGENTS (10000); KC_FANOUT_PEER (1000, at most a
tenth of the agents); KC_FANOUT_TRIALS (3); KC_FANOUT_RATE (new agents
started per second at most, all processes together: 1000; each process
also keeps at most 16 syncs in flight, which is what paces them when the
server is slower); KC_FANOUT_PER_PROCESS (agents in one kc_simagent, 2500:
each needs two descriptors); KC_FANOUT_READ (any, or members: the agents'
keys are registered first, and every sync then carries a directory of that
many keys; the mirrors' keys are registered too, and each mirror holds
its agents' keys before they connect). A quick check: KC_FANOUT_AGENTS=200.
About 3.5 minutes at 10,000 on a quiet box (2 without mirrors), most of
it the agents connecting: 10,000 to the server, then 10,000 to the mirrors.
"""
import json
import os
import queue
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import kc                                   # noqa: E402
from cluster import Cluster, free_base_port  # noqa: E402

AGENTS = int(os.environ.get("KC_FANOUT_AGENTS", "10000"))
PEER = int(os.environ.get("KC_FANOUT_PEER", str(max(1, min(1000, AGENTS // 10)))))
TRIALS = int(os.environ.get("KC_FANOUT_TRIALS", "3"))
RATE = int(os.environ.get("KC_FANOUT_RATE", "1000"))
PER_PROCESS = int(os.environ.get("KC_FANOUT_PER_PROCESS", "2500"))
READ = os.environ.get("KC_FANOUT_READ", "any")
HEARTBEAT_MS = int(os.environ.get("KC_FANOUT_HEARTBEAT", "5000"))
MIRRORS = int(os.environ.get("KC_FANOUT_MIRRORS", "4"))
WATCH_TIMEOUT_S = 60
KIB = 1024


def line(figure, value, beside=""):
    print(f"  {figure:<46} {value:<44} {beside}".rstrip(), flush=True)


def note(text):
    print(f"    {text}", flush=True)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def status_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1])
    return 0


def cpu_ns(pid):
    """Time on a CPU of every thread of pid (schedstat: nanoseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for row in f:
            if row.startswith("Max open files"):
                return row.split()[3]
    return "?"


class Sim:
    """One kc_simagent process: its commands in, its JSON lines to a queue."""

    def __init__(self, cluster, events, first, count, rate, upstreams=()):
        self.first, self.count = first, count
        self.log = os.path.join(cluster.root_dir, f"simagent-{first}.log")
        self.keys = os.path.join(cluster.root_dir, f"simagent-{first}.keys")
        self.last = {}
        self.quitting = False
        self.upstream = None                # its mirror's index (Fleet.start), or None: the server
        args = [os.path.join(kc.TESTS, "kc_simagent"), "--root", os.path.join(cluster.dir, "root"),
                "--agents", str(count), "--first", str(first), "--rate", str(max(1, rate))]
        for upstream in upstreams:
            args += ["--upstream", upstream]
        if READ == "members":
            args += ["--hold", "--keys-out", self.keys]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         text=True, start_new_session=True)
        kc._children.append(self.proc)
        threading.Thread(target=self._read, args=(events,), daemon=True).start()

    def _read(self, events):
        for text in self.proc.stdout:
            try:
                events.put((self, json.loads(text)))
            except ValueError:
                pass
        events.put((self, None))

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def log_tail(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                kc.stop(self.proc)


class Fleet:
    def __init__(self, cluster):
        self.cluster = cluster
        self.events = queue.Queue()
        self.sims = []

    def start(self, first, count, upstreams=(), registered=None):
        """Starts count agents numbered from first, in processes of at most
        PER_PROCESS, sharing RATE. With upstreams ("SNAP,UPD,KEY" each, the
        mirrors), as many processes for each (sim.upstream: its index), so
        that each upstream's agents come from processes of their own and
        each process joins one mirror (as one site's agents would). With
        read = members, registered() is called after their keys are, before
        they connect (a mirror must have them first)."""
        processes = -(-count // PER_PROCESS)
        if upstreams:
            processes = -(-processes // len(upstreams)) * len(upstreams)
        started = []
        for n in range(processes):
            size = count // processes + (1 if n < count % processes else 0)
            upstream = n % len(upstreams) if upstreams else None
            sim = Sim(self.cluster, self.events, first, size, RATE // processes,
                      [upstreams[upstream]] if upstreams else ())
            sim.upstream = upstream
            started.append(sim)
            first += size
        self.sims += started
        if READ == "members":
            self.wait("started", started, 60)
            for sim in started:
                self.cluster.cli("register", "--from", sim.keys, "--batch-size", "10000")
            if registered:
                registered()
            for sim in started:
                sim.send("start")
        return started

    def wait(self, kind, sims, timeout, applied=None):
        """Reads the processes' lines until each of sims has printed one of
        kind since it was last asked (kind "ready": ever); keeps the
        "applied" lines in applied. Returns {sim: event} of those that
        did."""
        got = {sim: sim.last[kind] for sim in sims if kind == "ready" and kind in sim.last}
        deadline = time.monotonic() + timeout
        while len(got) < len(sims) and time.monotonic() < deadline:
            try:
                sim, event = self.events.get(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if event is None:
                if sim.quitting:
                    continue
                raise RuntimeError(f"kc_simagent --first {sim.first} exited ({sim.proc.poll()}):\n"
                                   f"{sim.log_tail()}")
            sim.last[event["event"]] = event
            if event["event"] == "applied" and applied is not None and sim in sims:
                applied.append(event["latency_ms"])
            elif event["event"] == kind and sim in sims:
                got[sim] = event
        return got

    def status(self, sims):
        for sim in sims:
            sim.send("status")
        return self.wait("status", sims, 10)

    def ready(self, sims, what, mirrors=()):
        """Waits until every agent of sims is synced and live; fails loudly
        with how many were, if not within a generous timeout (and the end
        of the server's log, or of the mirrors')."""
        count = sum(sim.count for sim in sims)
        timeout = 60 + count / min(RATE, 50)
        got = self.wait("ready", sims, timeout)
        if len(got) < len(sims):
            statuses = self.status(sims)
            synced = sum(s["synced"] for s in statuses.values())
            live = sum(s["live"] for s in statuses.values())
            counts = {k: sum(s.get(k, 0) for s in statuses.values())
                      for k in ("faults", "timeouts", "socket_errors", "resyncs", "unsupported", "waiting")}
            logs = "".join(f"{m.name}'s log:\n{m.log_text()[-1000:]}" for m in mirrors) or \
                f"server log:\n{self.cluster.server_log_text()[-2000:]}"
            raise AssertionError(f"{what}: only {synced} of {count} agents synced ({live} with their update "
                                 f"channel live) within {timeout:.0f} s; {counts}; {logs}")
        return (max(event["synced_ms"] for event in got.values()) / 1000.0,
                max(event["elapsed_ms"] for event in got.values()) / 1000.0)

    def stop(self, sims=None):
        sims = self.sims if sims is None else sims
        for sim in sims:                    # all told first: they close their sockets together
            sim.quitting = True
            if sim.proc.poll() is None:
                try:
                    sim.send("quit")
                except (BrokenPipeError, OSError):
                    pass
        for sim in sims:
            sim.stop()


class Mirror:
    """One keyclone-mirror following the server: its own directory (the
    root, its CURVE key), its port pair, its log."""

    def __init__(self, cluster, name):
        self.cluster, self.name = cluster, name
        self.dir = os.path.join(cluster.root_dir, "mirrors", name)
        os.makedirs(self.dir)
        shutil.copy(os.path.join(cluster.dir, "root"), os.path.join(self.dir, "root"))
        self.key = kc.keyclone("keygen", "curve", "--dir", os.path.join(self.dir, "mirror"))[0].strip()
        if READ == "members":
            cluster.cli("register", f"mirror-{name}", "--key", self.key, "--tag", "role=mirror")
        self.port = free_base_port()
        self.log = os.path.join(self.dir, "mirror.log")
        self.proc = None

    def start(self):
        self.proc = kc.spawn([os.path.join(kc.BIN, "keyclone-mirror"), "--dir", self.dir, "--upstream", "server",
                              "--bind", f"tcp://127.0.0.1:{self.port}", "--read", READ,
                              "--stale-after", str(3 * HEARTBEAT_MS)], log=self.log)
        return self

    def upstream(self):
        """This mirror as kc_simagent's --upstream names it."""
        return f"tcp://127.0.0.1:{self.port},tcp://127.0.0.1:{self.port + 1},{self.key}"

    def store_seq(self):
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'mirror', 'store.db')}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT coalesce (max (seq), 0) FROM batches").fetchone()[0]
        except sqlite3.Error:
            return -1
        finally:
            db.close()

    def alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"keyclone-mirror {self.name} exited ({self.proc.returncode}):\n{self.log_text()}")
        return True

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            kc.stop(self.proc)


def trial(cluster, fleet, sims, name, key, mirrors=()):
    """Revokes name; returns the latencies of every agent of sims and the
    figures around them (the CPU of the server, of the mirrors, of the
    agents, while it went out)."""
    count = sum(sim.count for sim in sims)
    started_ms = time.time() * 1000
    for sim in sims:
        sim.send(f"watch key {key} {started_ms:.3f} {WATCH_TIMEOUT_S * 1000}")
    server_cpu = cpu_ns(cluster.server.pid)
    mirrors_cpu = sum(cpu_ns(m.proc.pid) for m in mirrors)
    agents_cpu = sum(cpu_ns(sim.proc.pid) for sim in sims)
    began = time.monotonic()
    kc.keyclone("revoke", name, "--dir", cluster.dir, "--reason", "bench_fanout")
    command_ms = (time.monotonic() - began) * 1000
    latencies = []
    reports = fleet.wait("watch", sims, WATCH_TIMEOUT_S + 10, applied=latencies)
    server_cpu = (cpu_ns(cluster.server.pid) - server_cpu) / 1e6
    mirrors_cpu = (sum(cpu_ns(m.proc.pid) for m in mirrors) - mirrors_cpu) / 1e6
    agents_cpu = (sum(cpu_ns(sim.proc.pid) for sim in sims) - agents_cpu) / 1e6
    if len(latencies) < count:
        counts = {k: sum(r.get(k, 0) for r in reports.values()) for k in ("faults", "resyncs", "equivocations")}
        where = (" behind " + ", ".join(f"{m.name} (seq {m.store_seq()}{'' if m.proc.poll() is None else ', exited'})"
                                       for m in mirrors)) if mirrors else ""
        raise AssertionError(f"revocation of {name}: applied by {len(latencies)} of {count} agents{where} within "
                             f"{WATCH_TIMEOUT_S} s ({len(reports)} of {len(sims)} processes reported; {counts})")
    return {"count": count, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "max": max(latencies), "min": min(latencies), "command_ms": command_ms,
            "server_cpu_ms": server_cpu, "mirrors_cpu_ms": mirrors_cpu, "agents_cpu_ms": agents_cpu}


def trials(cluster, fleet, sims, targets, mirrors=()):
    results = []
    for name, key in targets:
        time.sleep(1.0)                     # the head after the last revocation has gone out
        results.append(trial(cluster, fleet, sims, name, key, mirrors))
    return results


def median_of(results, field):
    return statistics.median(r[field] for r in results)


def report(label, results, peer=None, peer_name="the peer's"):
    p50, p99, top = (median_of(results, f) for f in ("p50", "p99", "max"))
    beside = ""
    if peer:
        beside = (f"{p50 / median_of(peer, 'p50'):.2f}x / {p99 / median_of(peer, 'p99'):.2f}x / "
                  f"{top / median_of(peer, 'max'):.2f}x {peer_name}")
    line(label, f"p50 {p50:7.1f}  p99 {p99:7.1f}  max {top:7.1f} ms", beside)
    note("trials (p50/p99/max ms): " + ", ".join(f"{r['p50']:.0f}/{r['p99']:.0f}/{r['max']:.0f}" for r in results)
         + f"; first agent {median_of(results, 'min'):.1f} ms")


def counts_of(statuses):
    return {k: sum(s[k] for s in statuses.values()) for k in ("faults", "resyncs", "equivocations", "timeouts",
                                                               "gaps", "missed", "bad_heads", "socket_errors")}


def mirror_moves(mirror):
    """The mirror's own summary at shutdown: upstream moves, syncs open."""
    found = re.findall(r"(\d+) upstream moves, (\d+) syncs served", mirror.log_text())
    return found[-1] if found else ("?", "?")


def main():
    kc.check(AGENTS >= 2 and 1 <= PEER < AGENTS and TRIALS >= 1 and MIRRORS >= 0, "KC_FANOUT_AGENTS >= 2, 1 <= "
             "KC_FANOUT_PEER < KC_FANOUT_AGENTS, KC_FANOUT_TRIALS >= 1 and KC_FANOUT_MIRRORS >= 0 needed")
    #   Children (the server, the mirrors and every kc_simagent) inherit the hard limit
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kc.check(not MIRRORS or -(-AGENTS // MIRRORS) + 64 < hard, f"{AGENTS} agents over {MIRRORS} mirrors: more "
             f"connections each than the descriptor limit ({hard})")
    print(f"  fanout: a revocation to {AGENTS:,} simulated agents (kc_simagent: real CURVE connections, every "
          f"batch and head verified by each agent), beside {PEER:,}; one server, read = {READ}, "
          f"{os.cpu_count()} cores" + (f"; then the same {AGENTS:,} behind {MIRRORS} keyclone-mirrors"
                                        if MIRRORS else ""), flush=True)
    bench_began = time.monotonic()
    cluster = Cluster(server_options=["--read", READ, "--heartbeat", str(HEARTBEAT_MS)])
    cluster.start_server()
    keys_dir = os.path.join(cluster.root_dir, "keys")
    targets = [(f"fanout-{i}", kc.keyclone("keygen", f"fanout-{i}", "--dir", keys_dir)[0].strip())
               for i in range(3 * TRIALS)]
    listing = os.path.join(cluster.root_dir, "targets.txt")
    with open(listing, "w") as f:
        f.writelines(f"{name}={key},tag=role=bench\n" for name, key in targets)
    cluster.cli("register", "--from", listing)
    pid = cluster.server.pid
    time.sleep(1)
    rss_idle = status_kib(pid)
    fds_idle = descriptors(pid)
    fleet = Fleet(cluster)
    mirrors, behind, mirrored, final_behind = [], [], None, {}

    def mirrors_hold_log():
        seq = cluster.server_status()["seq"]
        kc.wait_for(lambda: all(m.alive() and m.store_seq() >= seq for m in mirrors), 60,
                    what=f"the mirrors to reach seq {seq}")

    try:
        peer_sims = fleet.start(0, PEER)
        peer_sync_s = fleet.ready(peer_sims, f"the peer's {PEER} agents")
        time.sleep(2)
        rss_peer = status_kib(pid)
        peer = trials(cluster, fleet, peer_sims, targets[:TRIALS])
        joining_cpu = cpu_ns(pid)
        rest = fleet.start(PEER, AGENTS - PEER)
        sync_s = fleet.ready(rest, f"{AGENTS - PEER} more agents")
        joining_cpu = (cpu_ns(pid) - joining_cpu) / 1e6 / (AGENTS - PEER)
        time.sleep(2)
        rss_all, fds_all = status_kib(pid), descriptors(pid)
        everyone = trials(cluster, fleet, fleet.sims, targets[TRIALS:2 * TRIALS])
        final = fleet.status(fleet.sims)
        if MIRRORS:
            #   The server's own fleet leaves; the mirrors start, reach the
            #   server's seq, and the same number of agents joins them
            fleet.stop(peer_sims + rest)
            mirrors = [Mirror(cluster, f"m{i + 1}") for i in range(MIRRORS)]
            for mirror in mirrors:
                mirror.start()
            mirrors_hold_log()
            time.sleep(2)
            mirror_rss_idle = [status_kib(m.proc.pid) for m in mirrors]
            mirror_fds_idle = [descriptors(m.proc.pid) for m in mirrors]
            mirror_cpu = [cpu_ns(m.proc.pid) for m in mirrors]
            behind = fleet.start(AGENTS, AGENTS, [m.upstream() for m in mirrors], registered=mirrors_hold_log)
            per_mirror = [sum(sim.count for sim in behind if sim.upstream == n) for n in range(MIRRORS)]
            behind_sync_s = fleet.ready(behind, f"{AGENTS} agents behind {MIRRORS} mirrors", mirrors)
            mirror_joining_cpu = [(cpu_ns(m.proc.pid) - c) / 1e6 / n for m, c, n in zip(mirrors, mirror_cpu, per_mirror)]
            time.sleep(2)
            mirror_rss_all = [status_kib(m.proc.pid) for m in mirrors]
            mirror_fds_all = [descriptors(m.proc.pid) for m in mirrors]
            mirror_limit = nofile_limit(mirrors[0].proc.pid)
            rss_left, fds_left = status_kib(pid), descriptors(pid)
            mirrored = trials(cluster, fleet, behind, targets[2 * TRIALS:], mirrors)
            final_behind = fleet.status(behind)
            mirror_rss_end = [status_kib(m.proc.pid) for m in mirrors]
    finally:
        fleet.stop()
        for mirror in mirrors:
            mirror.stop()
    sims_rss = sum(s["rss_kib"] for s in final.values())
    counts = counts_of(final)
    for label, count, (synced, live) in ((f"{PEER:,} agents", PEER, peer_sync_s),
                                         (f"{AGENTS - PEER:,} more beside them", AGENTS - PEER, sync_s)):
        rate = count / max(synced, 1e-3)
        line(f"{label}: all synced / live", f"{synced:.1f} s ({rate:.0f} agents/s) / {live:.1f} s",
             f"at most {RATE}/s and 16 syncs in flight per process" if count == PEER else
             f"{len(peer_sims) + len(rest)} kc_simagent processes in all")
    if MIRRORS:
        synced, live = behind_sync_s
        line(f"{AGENTS:,} behind {MIRRORS} mirrors: synced / live", f"{synced:.1f} s ({AGENTS / max(synced, 1e-3):.0f} "
             f"agents/s) / {live:.1f} s", f"{len(behind)} kc_simagent processes, {len(behind) // MIRRORS} per mirror")
    print(f"  revocation -> applied by every agent, from `keyclone revoke` spawned ({TRIALS} trials each)",
          flush=True)
    report(f"  {PEER:,} agents (the peer)", peer)
    report(f"  {AGENTS:,} agents", everyone, peer)
    if MIRRORS:
        report(f"  {AGENTS:,} agents behind {MIRRORS} mirrors", mirrored, everyone, "without mirrors")
        note(f"{'/'.join(f'{n:,}' for n in per_mirror)} agents per mirror, joined after the {AGENTS:,} on the server "
             f"had left: the server then held {MIRRORS} connections")
    commands = peer + everyone + (mirrored or [])
    line("  beside them: the revoke command itself", f"p50 {median_of(commands, 'command_ms'):7.1f} ms")
    rows = [(f"{PEER:,} agents", peer), (f"{AGENTS:,} agents", everyone)]
    if MIRRORS:
        rows.append((f"{AGENTS:,} via {MIRRORS} mirrors", mirrored))
    for label, results in rows:
        cpu = median_of(results, "server_cpu_ms")
        agents_cpu = median_of(results, "agents_cpu_ms")
        line(f"server CPU per revocation, {label}", f"{cpu:.1f} ms ({cpu * 1000 / results[0]['count']:.1f} us "
             f"per agent)", f"the agents': {agents_cpu * 1000 / results[0]['count']:.0f} us each")
    if MIRRORS:
        with_m, without = median_of(mirrored, "server_cpu_ms"), median_of(everyone, "server_cpu_ms")
        mirrors_cpu = median_of(mirrored, "mirrors_cpu_ms")
        line("  with mirrors / without", f"{with_m / without:.3f}x ({without / max(with_m, 1e-3):.0f} times less)",
             f"the {MIRRORS} mirrors': {mirrors_cpu:.1f} ms in all, {mirrors_cpu / MIRRORS:.1f} ms each "
             f"({mirrors_cpu * 1000 / AGENTS:.1f} us per agent)")
    line("server CPU per agent joining", f"{joining_cpu:.2f} ms",
         "two CURVE handshakes (SUB, DEALER) and a sync")
    if MIRRORS:
        line("mirror CPU per agent joining", f"{statistics.median(mirror_joining_cpu):.2f} ms",
             "each mirror: " + ", ".join(f"{c:.2f}" for c in mirror_joining_cpu))
    per_agent = (rss_all - rss_idle) / AGENTS
    line("server memory per connected agent", f"{per_agent:.1f} KiB",
         f"RSS {rss_idle / KIB:.0f} MiB idle, {rss_peer / KIB:.0f} at {PEER:,}, {rss_all / KIB:.0f} at {AGENTS:,}"
)
    if MIRRORS:
        per_conn = [(a - i) / n for a, i, n in zip(mirror_rss_all, mirror_rss_idle, per_mirror)]
        line("mirror memory per connected agent", f"{statistics.median(per_conn):.1f} KiB",
             "each: " + ", ".join(f"{c:.1f}" for c in per_conn) + f"; RSS {statistics.median(mirror_rss_idle) / KIB:.0f}"
             f" MiB idle, {statistics.median(mirror_rss_all) / KIB:.0f} at {per_mirror[0]:,}, "
             f"{statistics.median(mirror_rss_end) / KIB:.0f} at the end")
    line("server descriptors", f"{fds_all:,} of {nofile_limit(pid)}", f"{fds_idle} idle" +
         (f"; {fds_left} serving only the {MIRRORS} mirrors (RSS then {rss_left / KIB:.0f} MiB)" if MIRRORS else ""))
    if MIRRORS:
        line("mirror descriptors", f"{statistics.median(mirror_fds_all):,.0f} of "
             f"{mirror_limit}",
             f"{statistics.median(mirror_fds_idle):.0f} idle")
    line("kc_simagent memory per agent", f"{sims_rss / AGENTS:.1f} KiB")
    line("faults / resyncs / equivocations", f"{counts['faults']} / {counts['resyncs']} / {counts['equivocations']}",
         ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("faults", "resyncs", "equivocations") and v))
    if MIRRORS:
        counts_m = counts_of(final_behind)
        moves = [mirror_moves(m) for m in mirrors]
        line("  behind the mirrors", f"{counts_m['faults']} / {counts_m['resyncs']} / {counts_m['equivocations']}",
             ", ".join(f"{k} {v}" for k, v in counts_m.items() if k not in ("faults", "resyncs", "equivocations")
                       and v) + ("; " if any(v for k, v in counts_m.items() if k not in ("faults", "resyncs",
                                                                                         "equivocations")) else "")
             + "the mirrors' upstream moves: " + "/".join(m for m, _ in moves))
        counts = {k: counts[k] + counts_m[k] for k in counts}
    note(f"one keyclone-server" + (f", {MIRRORS} keyclone-mirrors" if MIRRORS else "") + f" and {len(fleet.sims)} "
         f"kc_simagent processes on this {os.cpu_count()}-core box: each revocation's latency includes every agent's "
         "batch and head verification" + (" (and each mirror's, and its store's commit)" if MIRRORS else "") +
         f", all on these cores; heartbeat {HEARTBEAT_MS} ms (each agent checks every head's signature, about 50 us "
         f"here: at 1 s, {AGENTS:,} agents' checks alone would take {AGENTS * 50e-6:.2f} core); "
         f"{time.monotonic() - bench_began:.0f} s in all")
    cluster.stop_server()
    return 1 if counts["faults"] or counts["equivocations"] else 0


if __name__ == "__main__":
    sys.exit(main())
