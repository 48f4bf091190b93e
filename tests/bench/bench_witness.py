#!/usr/bin/python3
"""bench_witness - what witnesses (docs/witness.md, protocol.md section 9)
cost and what they do to freshness, each beside its peer measured in the
same run on this machine.

Two deployments per setting, alike but for the root: one with 3 witnesses
and a witness threshold of 2 ('keyclone init --witnesses 3'; three
'keyclone-agent --witness' processes), one without (the peer). Each has
AGENTS ordinary agents. Both take the same steady update stream, one after
the other: kc_burst --rate RATE single-record batches/s for SECONDS s (64 in
flight at most, every batch acknowledged by the server once durable).

  1. witness cost: cosignatures each witness makes and sends per second
     (its STATUS witness.cosigned, sampled every 20 ms), the cosignatures
     the server accepted and refused, the HEADs it published; the CPU
     seconds per second (/proc/PID/stat utime + stime) of each witness
     agent beside an ordinary agent of the same deployment; the server's
     and the ordinary agents' CPU with 3 witnesses beside the deployment
     without, same load;
  2. freshness: every SAMPLE_MS each ordinary agent's STATUS; the share of
     samples (within the stream) in which it was fresh, the smallest
     witnesses_fresh seen, and from its event stream (agent.md section 6:
     'registered', 'fresh', 'stale') the exact share of time fresh and the
     number of times it went stale; the lag from each registration's
     acknowledgement (kc_burst --acks-out, read as each line is written) to
     every agent holding that seq while fresh, p50/p99/max, with the lag
     to every agent merely holding it (applied, fresh or not) beside it.
     From the HEADs on the update channel (a SUB of this script's): the
     age of the threshold's (2nd-newest) cosignature on each, beside
     stale-after (the margin the agents have), each witness's longest
     silence (between the times of its successive cosignatures on them)
     beside the longest gap between HEADs, and the lag from an
     acknowledgement to a HEAD on which 2 witnesses vouch for that seq.

Everything runs on this box: the witnesses take CPU from the server and the
agents, as they would not on hosts of their own. So that both deployments
load the box alike, the one without witnesses runs three more ordinary
agents in their place, asked for their STATUS as often as the witnesses.
The two streams of a setting run one after the other, the one with
witnesses first, then last in the next.

Settings: stale-after 1000 ms with the server's --heartbeat 200 (the
witnesses must vouch within a second), then the defaults (stale-after
5000 ms, heartbeat 1000 ms; KC_BENCH_WITNESS_DEFAULTS=0 skips them).
Every agent runs with --check-interval 0. The benchmark fails (exit 1) if
a stream is not fully acknowledged, an agent is never fresh during it, an
acknowledged seq never reaches an agent while fresh, an agent is fresh in
less than FRESH_FLOOR of its samples or of the time, an agent does not
converge fresh after it, a witness does not cosign, or the server refuses
a cosignature; it warns (and says so in its last line) when agents are
fresh in fewer samples than FRESH_TARGET. This script's own sampling
takes about a tenth of a core (printed), alike in both. About a minute.
"""
import bisect
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq                                  # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402
from bench_sync import cpu_seconds, footer, header, line, note  # noqa: E402

RATE = int(os.environ.get("KC_BENCH_WITNESS_RATE", "1000"))
SECONDS = float(os.environ.get("KC_BENCH_WITNESS_SECONDS", "10"))
DEFAULTS = os.environ.get("KC_BENCH_WITNESS_DEFAULTS", "1") != "0"
AGENTS = 3
WITNESSES = 3
SAMPLE_MS = 20
WITNESS_SAMPLE_MS = 20                      # as the agents: STATUS costs both alike
STEADY_S = 1.0                              # HEADs' cosignature ages: from this far into the stream
FRESH_TARGET = 0.99                         # share of samples fresh under the stream: below, a warning
FRESH_FLOOR = 0.9                           # below, a failure
SETTINGS = [("stale-after 1000 ms, heartbeat 200 ms", 1000, 200)]
if DEFAULTS:
    SETTINGS.append(("defaults: stale-after 5000 ms, heartbeat 1000 ms", 5000, 1000))

SEQ = re.compile(rb'"seq": ?(\d+)')


class Failed(Exception):
    """Something is wrong (not merely slow): the benchmark exits 1."""


def must(condition, message):
    if not condition:
        raise Failed(message)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


#   --- Deployments ------------------------------------------------------------------

class Deployment:
    """One server, AGENTS ordinary agents and, with witnesses, the three
    witness agents, every agent with --stale-after stale."""

    def __init__(self, witnesses, stale, heartbeat):
        self.label = "3 witnesses, 2 needed" if witnesses else "no witnesses"
        self.cluster = Cluster(server_options=["--heartbeat", str(heartbeat)],
                               init_options=["--witnesses", str(WITNESSES)] if witnesses else [])
        self.cluster.start_server()
        options = ["--stale-after", str(stale), "--check-interval", "0"]
        keys = os.path.join(self.cluster.dir, "witnesses")
        self.witnesses = [self.cluster.add_agent(name=f"witness-{i}", options=options + [
            "--witness", os.path.join(keys, f"w{i}_secret")]) for i in range(1, WITNESSES + 1)] if witnesses else []
        #   Without witnesses, as many ordinary agents in their place: the
        #   box runs as many agents under both
        self.stand_ins = [] if witnesses else [self.cluster.add_agent(name=f"stand-in-{i}", options=options)
                                               for i in range(1, WITNESSES + 1)]
        self.agents = [self.cluster.add_agent(name=f"node-{i}", options=options) for i in range(1, AGENTS + 1)]
        self.stale = stale
        #   A key to listen to the update channel with (read = members)
        self.listener = zmq.curve_keypair()
        self.cluster.cli("register", "bench-listener", "--key", self.listener[0].decode())

    def heads(self, ctx):
        """A SUB to the server's HEADs (with the witnesses' cosignatures)."""
        socket = ctx.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, 0)
        socket.curve_publickey, socket.curve_secretkey = self.listener
        socket.curve_serverkey = self.cluster.server_key.encode()
        socket.setsockopt(zmq.SUBSCRIBE, b"HEAD")
        socket.connect(self.cluster.submit_endpoint.rsplit(":", 1)[0] + f":{self.cluster.base + 1}")
        return socket

    def ready(self):
        """Every agent at the server's seq and fresh; with witnesses, every
        witness's latest cosignature at the server's seq."""
        status = self.cluster.wait_converged(timeout=60)
        if self.witnesses:
            def cosigned():
                server = self.cluster.server_status()
                return all(w["cosigned"] and w["seq"] == server["seq"] for w in server["witnesses"])
            kc.wait_for(cosigned, 20, what=f"{WITNESSES} witnesses cosigning the server's seq")
        return status

    def stop(self):
        for agent in self.witnesses + self.stand_ins + self.agents:
            agent.stop()
        self.cluster.stop_server()


#   --- One stream, watched -------------------------------------------------------------

class Watch:
    """What happened to one agent during a stream: its STATUS samples, and
    from its event stream when it applied each seq and changed state."""

    def __init__(self, agent, ctx, events):
        self.agent = agent
        self.status = ctx.socket(zmq.DEALER)
        self.status.setsockopt(zmq.LINGER, 0)
        self.status.setsockopt(zmq.RECONNECT_IVL, 2)
        self.status.connect(agent.endpoint)
        self.pending = False
        self.samples = []                   # (time, state, seq, witnesses_fresh, status)
        self.skipped = 0                    # ticks with the previous STATUS unanswered
        self.events = None
        if events:
            self.events = ctx.socket(zmq.SUB)
            self.events.setsockopt(zmq.LINGER, 0)
            self.events.setsockopt(zmq.RCVHWM, 0)
            for prefix in (b"registered", b"fresh", b"stale"):
                self.events.setsockopt(zmq.SUBSCRIBE, prefix)
            self.events.connect(agent.events)
        self.applied_t, self.applied_seq = [], []
        self.state_t, self.state = [], []   # transitions, after the initial state

    def ask(self):
        if self.pending:
            self.skipped += 1
            return
        self.status.send(b"STATUS")
        self.pending = True

    def answer(self, now):
        reply = self.status.recv_multipart()
        self.pending = False
        if reply[0] != b"OK":
            raise Failed(f"agent {self.agent.name}: STATUS answered {reply}")
        status = json.loads(reply[1])
        self.samples.append((now, status["state"], status["seq"], status.get("witnesses_fresh"), status))

    def event(self, now):
        name, body = self.events.recv_multipart()[:2]
        seq = int(SEQ.search(body).group(1))
        if name == b"registered":
            if not self.applied_seq or seq > self.applied_seq[-1]:
                self.applied_t.append(now)
                self.applied_seq.append(seq)
        else:
            self.state_t.append(now)
            self.state.append(name.decode())

    def close(self):
        self.status.close()
        if self.events:
            self.events.close()

    #   From the events: the agent's state at a time, and when it held seq fresh

    def state_at(self, when):
        i = bisect.bisect_right(self.state_t, when)
        return self.state[i - 1] if i else self.initial

    def fresh_at_seq(self, seq):
        """The first time the agent held seq (or later) while fresh, or None."""
        i = bisect.bisect_left(self.applied_seq, seq)
        if i == len(self.applied_seq):
            return None, None
        applied = self.applied_t[i]
        if self.state_at(applied) == "fresh":
            return applied, applied
        j = bisect.bisect_right(self.state_t, applied)
        for k in range(j, len(self.state_t)):
            if self.state[k] == "fresh":
                return applied, self.state_t[k]
        return applied, None

    def time_fresh(self, start, end):
        """(share of [start, end] fresh, times it went stale within it)."""
        fresh, went_stale = 0.0, 0
        state, since = self.state_at(start), start
        for t, new in zip(self.state_t, self.state):
            if t <= start:
                continue
            if t >= end:
                break
            if state == "fresh":
                fresh += t - since
            if new == "stale" and state == "fresh":
                went_stale += 1
            state, since = new, t
        if state == "fresh":
            fresh += end - since
        return fresh / (end - start), went_stale


def stream(deployment, prefix):
    """Runs the update stream on deployment while watching it; returns the
    figures."""
    cluster = deployment.cluster
    before = deployment.ready()
    ctx = zmq.Context.instance()
    watches = [Watch(a, ctx, events=True) for a in deployment.agents]
    witness_watches = [Watch(w, ctx, events=False) for w in deployment.witnesses]
    #   The stand-ins are asked as often as the witnesses, for the same load
    stand_in_watches = [Watch(w, ctx, events=False) for w in deployment.stand_ins]
    poller = zmq.Poller()
    for w in watches + witness_watches + stand_in_watches:
        poller.register(w.status, zmq.POLLIN)
        if w.events:
            poller.register(w.events, zmq.POLLIN)
    heads_socket = deployment.heads(ctx)
    poller.register(heads_socket, zmq.POLLIN)
    heads = []                              # (time, head seq, [(cosignature seq, time ms)])
    owner = {heads_socket: (None, "heads")}
    for w in watches + witness_watches + stand_in_watches:
        owner[w.status] = (w, "status")
        if w.events:
            owner[w.events] = (w, "events")
    time.sleep(0.3)                         # the SUBs joined (ipc)
    for w in watches:
        status = w.agent.status()
        w.initial, w.syncs, w.log_from = status["state"], status["syncs"], len(w.agent.log_text())
        must(w.initial == "fresh", f"{deployment.label}: agent {w.agent.name} {w.initial} before the stream")
    server_before = cluster.server_status()
    acks_path = os.path.join(cluster.root_dir, f"acks-{prefix}")
    open(acks_path, "w").close()
    acks_fd = os.open(acks_path, os.O_RDONLY)
    acks, buffered = [], b""
    batches = int(RATE * SECONDS)
    args = [os.path.join(kc.TESTS, "kc_burst"), "--root", os.path.join(cluster.dir, "root"),
            "--operator", cluster.operator(0), "--batches", str(batches), "--records", "1",
            "--window", "64", "--rate", str(RATE), "--prefix", prefix, "--acks-out", acks_path,
            "--timeout", "30000"]
    burst = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cpu = {}
    pids = {"server": cluster.server.pid}
    pids.update({a.name: a.proc.pid for a in deployment.agents + deployment.witnesses + deployment.stand_ins})
    next_tick = time.monotonic()
    tick = 0
    done_at = None
    deadline = time.monotonic() + SECONDS + 60
    while True:
        now = time.monotonic()
        if now >= next_tick:
            for w in watches:
                w.ask()
            if tick % (WITNESS_SAMPLE_MS // SAMPLE_MS) == 0:
                for w in witness_watches + stand_in_watches:
                    w.ask()
            tick += 1
            next_tick += SAMPLE_MS / 1000
            if next_tick < now:
                next_tick = now + SAMPLE_MS / 1000
        for socket, _ in poller.poll(1):
            watch, kind = owner[socket]
            while True:
                try:
                    if kind == "heads":
                        frames = socket.recv_multipart(zmq.NOBLOCK)
                        heads.append((time.monotonic(), time.time() * 1000, int.from_bytes(frames[1][37:45], "big"),
                                      [(int.from_bytes(c[69:77], "big"), int.from_bytes(c[109:117], "big"),
                                        c[5:37]) for c in frames[2:]]))
                        continue
                    if kind == "events":
                        frames_ready = socket.getsockopt(zmq.EVENTS) & zmq.POLLIN
                        if not frames_ready:
                            break
                        watch.event(time.monotonic())
                    else:
                        if not socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                            break
                        watch.answer(time.monotonic())
                except zmq.Again:
                    break
        data = os.read(acks_fd, 1 << 16)
        if data:
            now = time.monotonic()
            buffered += data
            *lines, buffered = buffered.split(b"\n")
            for text in lines:
                acks.append((int(text), now))
            if "start" not in cpu:
                cpu["start"] = (acks[0][1], {name: cpu_seconds(pid) for name, pid in pids.items()})
                cpu["self"] = sum(os.times()[:2])
        if done_at is None and burst.poll() is not None:
            done_at = time.monotonic()
            data = os.read(acks_fd, 1 << 16)
            for text in (buffered + data).split(b"\n"):
                if text:
                    acks.append((int(text), done_at))
            cpu["end"] = (acks[-1][1] if acks else done_at,
                          {name: cpu_seconds(pid) for name, pid in pids.items()})
            cpu["self"] = sum(os.times()[:2]) - cpu.get("self", 0)
        if done_at is not None:
            # Until every agent holds the last seq fresh (what the lags need)
            last = acks[-1][0] if acks else 0
            vouched = not deployment.witnesses or any(
                sum(1 for c in h[3] if c[0] >= last) >= 2 for h in heads[-5:])
            if vouched and all(w.applied_seq and w.applied_seq[-1] >= last
                               and w.state_at(time.monotonic()) == "fresh" for w in watches) \
                    or time.monotonic() > done_at + 3 * deployment.stale / 1000 + 5:
                break
        if time.monotonic() > deadline:
            burst.kill()
            raise Failed(f"{deployment.label}: kc_burst still running after {SECONDS + 60:.0f} s")
    os.close(acks_fd)
    out, err = burst.communicate()
    for w in watches + witness_watches + stand_in_watches:
        w.close()
    heads_socket.close()
    result = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    must(burst.returncode == 0 and result.get("accepted") == batches,
         f"{deployment.label}: kc_burst exited {burst.returncode}: {result} {err.decode()[-500:]}")
    must(len(acks) == batches, f"{deployment.label}: {len(acks)} acknowledgements read, {batches} expected")
    server_after = cluster.server_status()
    after = cluster.wait_converged(timeout=30)
    return figures(deployment, watches, witness_watches, acks, heads, cpu, result, server_before, server_after,
                   before, after)


def figures(deployment, watches, witness_watches, acks, heads, cpu, result, server_before, server_after, before,
            after):
    label = deployment.label
    start, t0 = cpu["start"]
    end, t1 = cpu["end"]
    wall = end - start
    must(wall > SECONDS / 2, f"{label}: the stream lasted {wall:.1f} s")
    used = {name: (t1[name] - t0[name]) / wall for name in t0}
    f = {"label": label, "wall": wall, "stale": deployment.stale, "rate": len(acks) / wall, "burst": result,
         "server_cpu": used["server"],
         "agent_cpu": statistics.mean(used[w.agent.name] for w in watches),
         "witness_cpu": [used[w.agent.name] for w in witness_watches],
         "seqs": (before["seq"], after["seq"]), "self_cpu": cpu["self"] / wall}
    #   Freshness, sampled and exact
    f["agents"] = []
    for w in watches:
        inside = [s for s in w.samples if start <= s[0] <= end]
        must(inside, f"{label}: no STATUS sample of {w.agent.name} within the stream")
        fresh = sum(1 for s in inside if s[1] == "fresh")
        share, went_stale = w.time_fresh(start, end)
        must(fresh > 0 and share > 0,
             f"{label}: agent {w.agent.name} never fresh during the stream ({len(inside)} samples: "
             f"{sorted({s[1] for s in inside})}); its log:\n{w.agent.log_text()[-2000:]}")
        counts = [s[3] for s in inside if s[3] is not None]
        syncs = w.samples[-1][4]["syncs"] - w.syncs
        f["agents"].append({"name": w.agent.name, "samples": len(inside), "fresh": fresh / len(inside),
                            "time_fresh": share, "went_stale": went_stale, "skipped": w.skipped,
                            "min_witnesses": min(counts) if counts else None,
                            "syncs": syncs, "reasons": stale_reasons(w.agent.log_text()[w.log_from:])})
    f["fresh_samples"] = sum(a["fresh"] * a["samples"] for a in f["agents"]) / sum(a["samples"] for a in f["agents"])
    f["failed"] = [f"{a['name']} fresh in {a['fresh'] * 100:.1f}% of samples, {a['time_fresh'] * 100:.1f}% of the time"
                   for a in f["agents"] if min(a["fresh"], a["time_fresh"]) < FRESH_FLOOR]
    #   Lags: every agent holding the acknowledged seq (applied), and fresh
    applied_lag, fresh_lag, never = [], [], []
    for seq, acked in acks:
        applied_all, fresh_all = [], []
        for w in watches:
            applied, fresh = w.fresh_at_seq(seq)
            if applied is None or fresh is None:
                never.append((w.agent.name, seq, applied is None))
                break
            applied_all.append(applied)
            fresh_all.append(fresh)
        else:
            applied_lag.append((max(applied_all) - acked) * 1000)
            fresh_lag.append((max(fresh_all) - acked) * 1000)
    must(not never, f"{label}: {len(never)} acknowledged seqs never held fresh by every agent, first: "
                    f"{never[0] if never else ''}")
    f["applied_lag"], f["fresh_lag"] = applied_lag, fresh_lag
    #   Witnesses: their cosignatures over time, the server's intake
    f["witnesses"] = []
    for w in witness_watches:
        series = [(s[0], s[4]["witness"]["cosigned"], s[4]["witness"]["refusals"], s[4]["syncs"])
                  for s in w.samples]
        inside = [s for s in series if start <= s[0] <= end]
        must(len(inside) >= 2, f"{label}: too few STATUS samples of {w.agent.name}")
        count = inside[-1][1] - inside[0][1]
        span = inside[-1][0] - inside[0][0]
        must(count > 0, f"{label}: witness {w.agent.name} made no cosignature during the stream")
        per_second = []
        i = 0
        for j in range(len(inside)):
            while inside[j][0] - inside[i][0] > 1.0:
                i += 1
            if inside[j][0] - inside[i][0] >= 0.95 and (not per_second or j % 10 == 0):
                per_second.append((inside[j][1] - inside[i][1]) / (inside[j][0] - inside[i][0]))
        f["witnesses"].append({"name": w.agent.name, "rate": count / span,
                               "low": min(per_second) if per_second else count / span,
                               "high": max(per_second) if per_second else count / span,
                               "refusals": inside[-1][2] - inside[0][2], "syncs": inside[-1][3] - inside[0][3]})
    #   The HEADs the server published: how many, and how old the threshold's
    #   cosignatures on them were (what keeps every agent fresh)
    inside = [h for h in heads if start <= h[0] <= end]
    must(len(inside) > SECONDS, f"{label}: {len(inside)} HEADs heard during the stream")
    f["heads"] = len(inside) / wall
    f["head_gap"] = max(b[0] - a[0] for a, b in zip(inside, inside[1:])) * 1000
    if witness_watches:
        k = 2
        ages, vouched = [], []
        for t, wall_ms, seq, cosigs in inside:
            must(len(cosigs) >= k, f"{label}: a HEAD with {len(cosigs)} cosignatures during the stream")
            if t >= start + STEADY_S:
                ages.append(wall_ms - sorted((c[1] for c in cosigs), reverse=True)[k - 1])
        #   Each witness's longest silence: between successive cosignatures
        #   of its on the HEADs heard during the stream (their own times)
        offset = inside[0][1] - inside[0][0] * 1000
        window = (start * 1000 + offset, end * 1000 + offset)
        times = {}
        for h in heads:
            for c in h[3]:
                times.setdefault(c[2], set()).add(c[1])
        gaps = []
        for key in sorted(times):
            during = sorted(t for t in times[key] if window[0] <= t <= window[1])
            must(len(during) >= 2, f"{label}: a witness's cosignatures on {len(during)} HEADs during the stream")
            gaps.append(max(b - a for a, b in zip(during, during[1:])))
        f["gaps"] = gaps
        #   ack -> the first HEAD on which k witnesses vouch for that seq or later
        kth = [(h[0], sorted((c[0] for c in h[3]), reverse=True)[k - 1]) for h in heads if len(h[3]) >= k]
        best, times = [], []
        for t, seq in kth:
            if not best or seq > best[-1]:
                best.append(seq)
                times.append(t)
        for seq, acked in acks:
            i = bisect.bisect_left(best, seq)
            must(i < len(best), f"{label}: seq {seq} never vouched for by {k} witnesses on a HEAD")
            vouched.append((times[i] - acked) * 1000)
        f["vouch_age"], f["vouch_lag"] = ages, vouched
        f["server_cosigs"] = (server_after["cosignatures"] - server_before["cosignatures"]) / wall
        f["server_refused"] = server_after["cosignatures_refused"] - server_before["cosignatures_refused"]
        must(f["server_refused"] == 0, f"{label}: the server refused {f['server_refused']} cosignatures: "
             f"{deployment.cluster.server_log_text()[-2000:]}")
    return f


STALE_LINE = re.compile(r"kc_agent: stale: (.*?) \(policy")


def stale_reasons(log):
    """Why the agent went stale, by kind, from its log (numbers blanked)."""
    reasons = {}
    for match in STALE_LINE.finditer(log):
        kind = re.sub(r"\d+", "N", match.group(1))
        reasons[kind] = reasons.get(kind, 0) + 1
    return reasons


#   --- Output ------------------------------------------------------------------------

def lag_text(values):
    return (f"p50 {statistics.median(values):6.1f}  p99 {percentile(values, 0.99):6.1f}  "
            f"max {max(values):6.1f} ms")


def report(title, with_w, without):
    print(f"{title}: {RATE} single-record batches/s for {SECONDS:g} s, {AGENTS} agents + 3 witnesses, "
          f"or + 3 ordinary agents in their place", flush=True)
    for f in (with_w, without):
        note(f"{f['label']}: {f['rate']:.0f} acknowledged batches/s over {f['wall']:.1f} s "
             f"(kc_burst p50 {f['burst']['p50_ms']:.2f} ms, p99 {f['burst']['p99_ms']:.2f} ms to the ack); "
             f"seq {f['seqs'][0]} -> {f['seqs'][1]}; this script's sampling used "
             f"{f['self_cpu'] * 1000:.0f} ms/s of CPU")
    print("  1. witness cost", flush=True)
    for w, cpu in zip(with_w["witnesses"], with_w["witness_cpu"]):
        line(f"{w['name']}: cosignatures made and sent", f"{w['rate']:.1f}/s [{w['low']:.0f}-{w['high']:.0f}]",
             "", f"{w['rate'] / with_w['rate'] * 1000:.1f} per 1,000 batches; {w['refusals']} heads not cosigned, "
             f"{w['syncs']} resyncs")
    line("server: cosignatures accepted", f"{with_w['server_cosigs']:.1f}/s", "",
         f"{with_w['server_refused']} refused")
    line("server: HEADs published, 3 witnesses", f"{with_w['heads']:.1f}/s", f"none {without['heads']:.1f}/s",
         f"x{with_w['heads'] / without['heads']:.2f}")
    agent_cpu = with_w["agent_cpu"]

    def cpu_text(cpu, f):
        return f"{cpu * 1000:.1f} ms/s ({cpu / f['rate'] * 1e6:.0f} us/batch)"
    for w, cpu in zip(with_w["witnesses"], with_w["witness_cpu"]):
        line(f"{w['name']}: CPU", cpu_text(cpu, with_w), f"agent {agent_cpu * 1000:.1f} ms/s",
             f"x{cpu / agent_cpu:.2f} an ordinary agent")
    line("server CPU, 3 witnesses", cpu_text(with_w["server_cpu"], with_w),
         f"none {without['server_cpu'] * 1000:.1f} ms/s",
         f"x{with_w['server_cpu'] / without['server_cpu']:.2f} "
         f"(x{with_w['server_cpu'] / with_w['rate'] / (without['server_cpu'] / without['rate']):.2f} per batch)")
    line("ordinary agent CPU (mean), 3 witnesses", cpu_text(agent_cpu, with_w),
         f"none {without['agent_cpu'] * 1000:.1f} ms/s",
         f"x{agent_cpu / without['agent_cpu']:.2f} "
         f"(x{agent_cpu / with_w['rate'] / (without['agent_cpu'] / without['rate']):.2f} per batch)")
    note("cosignatures per second: over the stream [lowest-highest over 1 s windows]; CPU: utime + stime from "
         "/proc/PID/stat over the stream (first to last ack), per second of it and per acknowledged batch")
    print("  2. freshness of the agents under the stream", flush=True)
    warn = False
    for f in (with_w, without):
        agents = f["agents"]
        line(f"{f['label']}: samples fresh", f"{f['fresh_samples'] * 100:.2f}%",
             f"target >= {FRESH_TARGET * 100:g}%",
             "met" if f["fresh_samples"] >= FRESH_TARGET else "MISSED")
        line("  per agent, samples fresh", " ".join(f"{a['fresh'] * 100:.1f}%" for a in agents),
             f"{sum(a['samples'] for a in agents)} samples")
        line("  per agent, time fresh (events)", " ".join(f"{a['time_fresh'] * 100:.1f}%" for a in agents))
        line("  per agent, resyncs", " ".join(str(a["syncs"]) for a in agents))
        line("  per agent, went stale", " ".join(str(a["went_stale"]) for a in agents),
             "", f"{sum(a['went_stale'] for a in agents) / f['wall'] * 60 / len(agents):.1f} per agent-minute")
        if f is with_w:
            line("  per agent, fewest witnesses fresh seen", " ".join(str(a["min_witnesses"]) for a in agents),
                 "2 needed")
        reasons = {}
        for a in agents:
            for kind, count in a["reasons"].items():
                reasons[kind] = reasons.get(kind, 0) + count
        for kind, count in sorted(reasons.items(), key=lambda item: -item[1])[:3]:
            note(f"stale {count}x (from the stream's start): {kind}")
        if f["fresh_samples"] < FRESH_TARGET:
            warn = True
    line("2nd-newest cosignature's age on each HEAD", lag_text(with_w["vouch_age"]),
         f"stale-after {with_w['stale']} ms", f"from {STEADY_S:g} s into the stream")
    line("each witness's longest silence (on HEADs)", " / ".join(f"{g:.0f}" for g in with_w["gaps"]) + " ms",
         f"stale-after {with_w['stale']} ms", "between successive cosignatures")
    line("longest gap between HEADs, 3 witnesses", f"{with_w['head_gap']:.0f} ms", f"none {without['head_gap']:.0f} ms",
         "what the agents had heard nothing for")
    line("ack -> a HEAD with 2 cosignatures of that seq+", lag_text(with_w["vouch_lag"]))
    line("ack -> fresh at that seq on all agents, 3 witnesses", lag_text(with_w["fresh_lag"]))
    line("  beside it: applied on all, fresh or not", lag_text(with_w["applied_lag"]))
    line("ack -> fresh at that seq on all agents, no witnesses", lag_text(without["fresh_lag"]), "",
         f"x{statistics.median(with_w['fresh_lag']) / max(0.01, statistics.median(without['fresh_lag'])):.2f} "
         f"p50, x{percentile(with_w['fresh_lag'], 0.99) / max(0.01, percentile(without['fresh_lag'], 0.99)):.2f} p99")
    line("  beside it: applied on all, fresh or not", lag_text(without["applied_lag"]))
    note(f"samples: STATUS of each agent every {SAMPLE_MS} ms within the stream; lags: over every acknowledged "
         "batch, from kc_burst's ack line (read within ~1 ms) to the last agent's 'registered' event, and to it "
         "holding that seq while fresh (from its 'fresh'/'stale' events); HEADs and their cosignatures heard on "
         "the update channel by a SUB of this script's")
    skipped = sum(a["skipped"] for f in (with_w, without) for a in f["agents"])
    if skipped:
        note(f"{skipped} samples skipped: the agent had not answered the previous STATUS yet")
    return warn


def main():
    mark = header("witness: cost and freshness, 3 witnesses (2 needed) vs none")
    warned = []
    try:
        for n, (title, stale, heartbeat) in enumerate(SETTINGS):
            with_w = Deployment(True, stale, heartbeat)
            without = Deployment(False, stale, heartbeat)
            try:
                #   Alternately first, so that neither always runs on a box
                #   the other has just warmed (or other work left alone)
                if n % 2 == 0:
                    a, b = stream(with_w, "w"), stream(without, "n")
                else:
                    b, a = stream(without, "n"), stream(with_w, "w")
            finally:
                with_w.stop()
                without.stop()
            if report(title, a, b):
                warned.append(title)
            #   Reported first, so that the numbers are there to read
            for f in (a, b):
                must(not f["failed"], f"{title}, {f['label']}: {'; '.join(f['failed'])} (floor "
                                      f"{FRESH_FLOOR * 100:g}%)")
    except Failed as error:
        print(f"bench_witness: FAILED: {error}", flush=True)
        return 1
    footer("bench_witness", mark)
    if warned:
        print(f"bench_witness: WARNING: agents fresh in fewer than {FRESH_TARGET * 100:g}% of samples under "
              f"the stream ({'; '.join(warned)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
