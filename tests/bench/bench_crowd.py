#!/usr/bin/python3
"""bench_crowd - issue 10's figures: an agent at rest, and a crowd of real
agent processes on one server.

  a. at rest: one server, one agent, one key, nothing changing, a head every
     second (the defaults): CPU per minute and wakeups per second of each
     (from /proc: CPU ticks and voluntary context switches of every thread),
     and bytes the agent wrote to its disk;
  c. per single-record update: one agent's CPU (user + system) per update
     over a stream of 5,000 single-record batches, beside one raw Ed25519
     verification measured in the same run (build/tests/raw_verify);
  b. a crowd: KC_CROWD agents (default 200, each its own --dir and key,
     registered) started at once on a server holding a 10,000-key
     directory: time until all hold the server's sequence, the server's
     peak RSS, a revocation reaching all of them (p50/max, from their event
     streams), then the server restarted under them: time until all are
     fresh again and how many synced more than once.

Set KC_BENCH_CROWD to a subset of "acb" (default all) to run part of it.
"""
import glob
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq                                  # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402

PARTS = os.environ.get("KC_BENCH_CROWD", "acb")
CROWD = int(os.environ.get("KC_CROWD", "200"))
HZ = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def line(figure, value, target="", verdict=""):
    print(f"  {figure:<48} {value:<34} {target:<22} {verdict}".rstrip(), flush=True)


def note(text):
    print(f"    {text}", flush=True)


def verdict(value, limit):
    return f"{'met' if value <= limit else 'MISSED'} ({value / limit:.2f}x target)"


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wakeups(pid):
    """Voluntary context switches of every thread: each is the process
    going to sleep, so one per wake-up."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/status"):
        with open(path) as f:
            for row in f:
                if row.startswith("voluntary_ctxt_switches:"):
                    total += int(row.split()[1])
    return total


def written(pid):
    with open(f"/proc/{pid}/io") as f:
        for row in f:
            if row.startswith("write_bytes:"):
                return int(row.split()[1])
    return 0


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) / 1024
    return 0


def at_rest():
    cluster = Cluster()
    cluster.start_server()
    agent = cluster.add_agent()
    cluster.wait_converged()
    time.sleep(3)                            # past start-up
    pids = {"agent": agent.proc.pid, "server": cluster.server.pid}
    before = {name: (cpu_ticks(pid), wakeups(pid), written(pid)) for name, pid in pids.items()}
    seconds = 60
    time.sleep(seconds)
    for name, pid in pids.items():
        ticks, woke, wrote = cpu_ticks(pid) - before[name][0], wakeups(pid) - before[name][1], \
            written(pid) - before[name][2]
        cpu_ms = ticks * 1000 / HZ
        line(f"{name} at rest: CPU per minute", f"{cpu_ms:.0f} ms ({cpu_ms / 600:.3f}% of a core)",
             "target <= 0.1%", verdict(cpu_ms / 600, 0.1))
        line(f"  wake-ups per second", f"{woke / seconds:.1f}")
        line(f"  bytes written to disk in {seconds} s", f"{wrote}",
             "target: the head, once a minute" if name == "agent" else "")
    note(f"one key, nothing changing, a head every second; {seconds} s measured from /proc "
         "(CPU ticks, voluntary context switches of all threads, write_bytes)")
    agent.stop()
    cluster.stop_server()


def raw_verify_us():
    out, _ = kc.run([os.path.join(kc.TESTS, "raw_verify"), "1.0"])
    return 1e6 / json.loads(out)["verifies_per_s"]


def per_update():
    cluster = Cluster(server_options=["--read", "any"])
    cluster.start_server()
    agent = cluster.add_agent(register=False, options=["--check-interval", "0"])
    cluster.wait_converged()
    count, rounds = 3000, 3
    ratios, pers, verifies = [], [], []
    for n in range(rounds):
        before = raw_verify_us()
        ticks = cpu_ticks(agent.proc.pid)
        cluster.burst(count, records=1, window=64, prefix=f"stream-{n}")
        cluster.wait_converged(timeout=120)
        used = (cpu_ticks(agent.proc.pid) - ticks) / HZ
        verify = (before + raw_verify_us()) / 2
        pers.append(used / count * 1e6)
        verifies.append(verify)
        ratios.append(pers[-1] / verify)
    middle = sorted(range(rounds), key=lambda i: ratios[i])[rounds // 2]
    line("agent CPU per single-record update", f"{pers[middle]:.0f} us", "target <= 1.3x verify",
         verdict(ratios[middle], 1.3))
    line("  one raw Ed25519 verification (same run)", f"{verifies[middle]:.0f} us", "",
         f"ratio {ratios[middle]:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    note(f"{rounds} rounds of {count} single-record batches streamed (64 in flight), the agent's user + "
         "system CPU from /proc, each beside raw verify measured just before and after it; the median round")
    agent.stop()
    cluster.stop_server()


class Events:
    """Subscribes to every agent's event stream; records when each saw an event."""

    def __init__(self, agents, prefix):
        self.ctx = zmq.Context.instance()
        self.poller = zmq.Poller()
        self.sockets = {}
        for agent in agents:
            s = self.ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            s.connect(agent.events)
            self.sockets[s] = agent.name
            self.poller.register(s, zmq.POLLIN)

    def until(self, predicate, timeout):
        seen = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(self.sockets) and time.monotonic() < deadline:
            for s, _ in self.poller.poll(100):
                frames = s.recv_multipart()
                if predicate(json.loads(frames[1])) and self.sockets[s] not in seen:
                    seen[self.sockets[s]] = time.monotonic()
        return seen

    def close(self):
        for s in self.sockets:
            s.close()


def statuses(agents):
    result = {}
    for agent in agents:
        try:
            result[agent.name] = agent.status()
        except (TimeoutError, RuntimeError):
            result[agent.name] = None
    return result


def wait_all(agents, predicate, timeout):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        current = statuses(agents)
        if all(s and predicate(s) for s in current.values()):
            return time.monotonic() - started, current
        time.sleep(0.25)
    current = statuses(agents)
    behind = [name for name, s in current.items() if not (s and predicate(s))]
    raise AssertionError(f"{len(behind)} of {len(agents)} agents not there after {timeout} s: {behind[:5]}")


def crowd():
    cluster = Cluster()
    cluster.start_server()
    cluster.burst(1, records=10000, prefix="directory")
    agents = [cluster.add_agent(register=False, start=False, options=["--check-interval", "0"])
              for _ in range(CROWD)]
    fleet = os.path.join(cluster.root_dir, "fleet.txt")
    with open(fleet, "w") as f:
        for agent in agents:
            f.write(f"{agent.name}={agent.key},tag=role=agent\n")
    cluster.cli("register", "--from", fleet)
    seq = cluster.server_status()["seq"]
    started = time.monotonic()
    for agent in agents:
        agent.start()
    took, _ = wait_all(agents, lambda s: s["seq"] >= seq and not s["syncing"], 600)
    server_peak = peak_rss_mib(cluster.server.pid)
    line(f"{CROWD} agents started at once: all at the server's seq", f"{took:.1f} s")
    line("  server peak RSS (VmHWM)", f"{server_peak:.0f} MiB")
    rss = sorted(peak_rss_mib(a.proc.pid) for a in agents)
    line("  agent peak RSS, median / max", f"{rss[len(rss) // 2]:.0f} / {rss[-1]:.0f} MiB")
    # A revocation reaching them all
    events = Events(agents, "revoked")
    time.sleep(0.5)
    victim = kc.keyclone("keygen", "victim", "--dir", cluster.root_dir)[0].strip()
    cluster.cli("register", "victim", "--key", victim)
    revoked_at = time.monotonic()
    cluster.cli("revoke", "victim")
    seen = events.until(lambda event: event.get("name") == "victim", 60)
    events.close()
    delays = sorted(t - revoked_at for t in seen.values())
    kc.check(len(delays) == CROWD, f"the revocation reached {len(delays)} of {CROWD} agents")
    line(f"revocation -> all {CROWD} agents, p50 / max",
         f"{delays[len(delays) // 2] * 1000:.0f} / {delays[-1] * 1000:.0f} ms")
    # The server restarted under them
    before = {name: s["syncs"] for name, s in statuses(agents).items()}
    cluster.stop_server()
    time.sleep(1)
    restarted = time.monotonic()
    cluster.start_server()
    took, after = wait_all(agents, lambda s: s["state"] == "fresh" and s["head_age_ms"] < 2000, 600)
    again = sum(1 for name, s in after.items() if s["syncs"] - before[name] > 1)
    line(f"server restarted: all {CROWD} fresh again", f"{time.monotonic() - restarted:.1f} s")
    line("  agents that synced more than once", f"{again}", "target 0", verdict(again + 1, 1))
    note(f"{CROWD} real keyclone-agent processes (each its own --dir, key registered, read = members) "
         f"on one server with a 10,000-key directory, all on this {os.cpu_count()}-core box")
    for agent in agents:
        agent.stop()
    cluster.stop_server()


def main():
    print(f"crowd: issue 10 figures on {os.cpu_count()} cores", flush=True)
    if "a" in PARTS:
        print("a. at rest", flush=True)
        at_rest()
    if "c" in PARTS:
        print("c. per single-record update", flush=True)
        per_update()
    if "b" in PARTS:
        print(f"b. {CROWD} agents on one server", flush=True)
        crowd()


if __name__ == "__main__":
    main()
