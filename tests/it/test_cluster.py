#!/usr/bin/python3
"""A keyclone server cluster (docs/cluster.md): three keyclone-server members
on 127.0.0.1, made by 'keyclone init --members', with agents that move
between them. The leader killed with SIGKILL while a client registers keys
one by one: every registration the CLI reported is on every agent, and the
agents never start again from seq 0; the leader stopped with SIGSTOP (a
partition): registrations go on through the new leader, and what the old
one is sent meanwhile is never acknowledged unless it is in everyone's log;
a rolling restart with agents connected; a member whose directory was
wiped, or restored from an old backup, catches up; a minority refuses
submissions with a reason and still serves reads; a stranger at a member's
Raft port is refused; a rogue leader (a stolen member key) gets a forged
batch committed by Raft and stored by no member; a member is added and
another removed while the cluster runs."""
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kc  # noqa: E402
from cluster import Members, free_base_ports, stranger_refused  # noqa: E402


def keys(members, count, prefix):
    """count node key files (public halves) made in advance."""
    out = []
    folder = os.path.join(members.root_dir, "keys")
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        key = kc.keyclone("keygen", f"{prefix}-{i}", "--dir", folder)[0].strip()
        out.append((f"{prefix}-{i}", os.path.join(folder, f"{prefix}-{i}")))
        KEYS[f"{prefix}-{i}"] = key
    return out


KEYS = {}                                       # name -> Z85 public key


def member_id(name):
    """A member's Raft id, as keyclone-server derives it from its name
    (docs/cluster.md 2): BLAKE2b-64 of the name, big-endian, halved."""
    import hashlib
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1 or 1


class Registrar(threading.Thread):
    """Registers keys one by one with the CLI (the root's first member
    first, as a user would), noting what it reported as accepted."""

    def __init__(self, members, todo, timeout=10000):
        super().__init__(daemon=True)
        self.members, self.todo, self.timeout = members, todo, timeout
        self.accepted, self.failed = {}, []
        self.times = []                         # (when done, accepted?)

    def run(self):
        for name, path in self.todo:
            started = time.time()
            out, err = kc.keyclone("register", name, "--key", path, "--dir", self.members.dir,
                                   "--timeout", str(self.timeout), expect=None)
            if out.startswith(f"registered {name} ") and " at seq " in out:
                self.accepted[name] = int(out.split(" at seq ")[1].split()[0])
                self.times.append((time.time(), True))
                self.slowest = max(getattr(self, "slowest", (0, "")), (time.time() - started, err.strip()))
            else:
                self.failed.append((name, (out + err).strip()))
                self.times.append((time.time(), False))


def every_agent_has(members, names):
    seq = max(members.status(n)["seq"] for n in members.running())
    for agent in members.agents:
        agent.wait_seq(seq, timeout=60)
        for name in names:
            found = agent.lookup(KEYS[name])
            kc.check(found["status"] == "trusted" and found["name"] == name,
                     f"agent {agent.name} does not trust {name}: {found}")


def cold_syncs(members):
    """Each agent's syncs from seq 0 and cache rebuilds so far."""
    return {a.name: (a.status()["cold_syncs"], a.status()["rebuilds"]) for a in members.agents}


def no_cold_sync(members, before):
    """No agent started again from seq 0 since before (cold_syncs)."""
    now = cold_syncs(members)
    kc.check(now == before, f"agents synced from seq 0 or rebuilt their cache: {before} -> {now}")


def test_kill_the_leader_while_registering():
    members = Members()
    leader = members.start_all()
    for i in range(3):
        members.add_agent(f"node-{i}")
    for agent in members.agents:
        agent.wait_seq(3)
    before = cold_syncs(members)
    todo = keys(members, 24, "kill")
    registrar = Registrar(members, todo)
    registrar.start()
    kc.wait_for(lambda: len(registrar.times) >= 8, 60, what="8 registrations before the kill")
    killed_at = time.time()
    members.stop(leader, signal.SIGKILL)
    registrar.join(240)
    kc.check(not registrar.is_alive(), "the registrations did not finish")
    survivors = [n for n in members.names if n != leader]
    new = members.leader(among=survivors)
    kc.check(new != leader, f"{leader} was killed and still leads")
    after = [t for t, ok in registrar.times if t > killed_at and ok]
    kc.check(after, f"nothing was accepted after the kill: {registrar.failed}")
    print(f"  killed {leader}; {new} leads; first acknowledged registration {after[0] - killed_at:.2f} s "
          f"after the kill; {len(registrar.accepted)} accepted, {len(registrar.failed)} not: "
          f"{registrar.failed[:2]}; slowest {registrar.slowest}")
    #   Every acknowledged registration is on every agent, at the seq the CLI said
    every_agent_has(members, list(registrar.accepted))
    seqs = sorted(registrar.accepted.values())
    kc.check(len(set(seqs)) == len(seqs), f"two registrations reported at one seq: {seqs}")
    no_cold_sync(members, before)
    out, _ = kc.keyclone("cluster", "status", "--dir", members.dir)
    kc.check(f"leader {new}," in out and f"{leader} " in out and "DOWN" in out, f"cluster status said:\n{out}")
    #   The killed member comes back and catches up
    members.start(leader)
    members.wait_same()
    view = json.loads(kc.keyclone("cluster", "status", "--json", "--dir", members.dir)[0])
    kc.check(view["leader"] == new and view["answered"] == 3 and all(s["lag"] == 0 for s in view["servers"]),
             f"cluster status after the restart: {view}")
    for agent in members.agents:
        agent.stop()
    for name in members.running():
        kc.check(members.stop(name) == 0, f"member {name} did not stop cleanly")


def test_a_partitioned_leader_acknowledges_nothing():
    members = Members()
    leader = members.start_all()
    members.add_agent("node-0")
    members.agents[0].wait_seq(1)
    before = cold_syncs(members)
    #   A batch signed offline, sent straight to the leader while it is stopped
    todo = keys(members, 7, "stop")
    batch = os.path.join(members.root_dir, "held.batch")
    members.cli("sign", "--register", f"held={todo[0][1]}", "--out", batch)
    os.kill(members.procs[leader].pid, signal.SIGSTOP)
    ctx = zmq.Context.instance()
    held = ctx.socket(zmq.DEALER)
    held.linger = 0
    held.curve_publickey, held.curve_secretkey = zmq.curve_keypair()
    root = json.loads(kc.keyclone("root", "show", "--json", "--dir", members.dir,
                                  "--server", members.submit(next(n for n in members.names if n != leader)))[0])
    server = next(s for s in root["servers"] if s["name"] == leader)
    held.curve_serverkey = server["server_key"].encode()
    held.connect(members.submit(leader))
    with open(batch, "rb") as f:
        held.send_multipart([b"SUBMIT", f.read()])
    try:
        survivors = [n for n in members.names if n != leader]
        new = members.leader(among=survivors)
        registrar = Registrar(members, todo[1:])
        registrar.run()
        kc.check(len(registrar.accepted) == 6, f"registrations failed during the partition: {registrar.failed}")
    finally:
        os.kill(members.procs[leader].pid, signal.SIGCONT)
    #   The old leader steps down, and what it was sent is acknowledged only
    #   if the cluster has it
    kc.check(held.poll(20000), "the old leader never answered what it was sent while stopped")
    reply = held.recv_multipart()
    held.close()
    kc.wait_for(lambda: members.status(leader)["cluster"]["state"] == "follower", 20,
                what=f"{leader} stepping down")
    seq, chain = members.wait_same()
    in_log = members.cli("show", "held", expect=None)
    if reply[0] == b"OK":
        kc.check("held" in in_log[0], f"the old leader acknowledged a batch the cluster lost: {reply}")
    else:
        kc.check(reply[0] == b"ERROR", f"unexpected reply {reply}")
    print(f"  {leader} stopped, {new} took over; what {leader} was sent: {reply[0].decode()} "
          f"{reply[-1][:120].decode(errors='replace')}")
    every_agent_has(members, list(registrar.accepted))
    no_cold_sync(members, before)
    for agent in members.agents:
        agent.stop()
    for name in members.running():
        members.stop(name)


def test_rolling_restart_keeps_agents_fresh():
    members = Members()
    members.start_all()
    for i in range(3):
        members.add_agent(f"node-{i}", options=["--stale-after", "5000"])
    for agent in members.agents:
        agent.wait_seq(3)
    before = cold_syncs(members)
    stale_since, longest = {}, {}
    watching = True

    def watch():
        while watching:
            for agent in members.agents:
                try:
                    state = agent.status()["state"]
                except Exception:
                    continue
                now = time.time()
                if state != "fresh":
                    stale_since.setdefault(agent.name, now)
                    longest[agent.name] = max(longest.get(agent.name, 0), now - stale_since[agent.name])
                else:
                    stale_since.pop(agent.name, None)
            time.sleep(0.1)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    todo = keys(members, 6, "roll")
    accepted = []
    for i, name in enumerate(members.names):
        members.stop(name)
        out, _ = kc.keyclone("register", todo[i][0], "--key", todo[i][1], "--dir", members.dir)
        accepted.append(todo[i][0])
        time.sleep(3)                   # down longer than half the window: its agents move
        members.start(name)
        members.wait_same()
        out, _ = kc.keyclone("register", todo[3 + i][0], "--key", todo[3 + i][1], "--dir", members.dir)
        accepted.append(todo[3 + i][0])
    time.sleep(1)
    watching = False
    watcher.join()
    every_agent_has(members, accepted)
    worst = max(longest.values(), default=0)
    moves = {a.name: a.status()["member_moves"] for a in members.agents}
    print(f"  every member restarted in turn; agents not fresh for at most {worst:.1f} s; moves {moves}")
    kc.check(worst < 5.0, f"an agent was not fresh for {worst:.1f} s, beyond its 5 s window: {longest}")
    kc.check(sum(moves.values()) >= 1, f"no agent moved to another member: {moves}")
    no_cold_sync(members, before)
    for agent in members.agents:
        agent.stop()
    for name in members.running():
        members.stop(name)


def test_a_wiped_or_restored_member_catches_up_and_a_minority_refuses():
    members = Members()
    leader = members.start_all()
    members.add_agent("node-0")
    todo = keys(members, 5, "wipe")
    for name, path in todo[:3]:
        members.cli("register", name, "--key", path)
    follower = next(n for n in members.names if n != leader)
    members.stop(follower)
    data = os.path.join(members.dir, "servers", follower, "server")
    for entry in os.listdir(data):
        if entry.startswith("store.db") or entry == "raft":
            kc.run(["rm", "-rf", os.path.join(data, entry)])
    members.cli("register", todo[3][0], "--key", todo[3][1])
    members.start(follower)
    seq, chain = members.wait_same()
    kc.check(members.status(follower)["seq"] == seq == 5, f"the wiped member is at {members.status(follower)}")
    #   Its data directory backed up, more accepted, the backup restored:
    #   it catches up again, no repair
    members.stop(follower)
    kc.run(["cp", "-a", data, data + ".bak"])
    members.start(follower)
    backup_keys = keys(members, 2, "after-backup")
    for name, path in backup_keys:
        members.cli("register", name, "--key", path)
    members.stop(follower)
    kc.run(["rm", "-rf", data])
    kc.run(["mv", data + ".bak", data])
    members.start(follower)
    seq, chain = members.wait_same()
    kc.check(members.status(follower)["seq"] == seq == 7, f"the restored member is at {members.status(follower)}")
    #   Its store alone set back (what a power cut does to commits made with
    #   synchronous=NORMAL), its Raft log kept: the replay gives them back
    members.stop(follower)
    kc.run(["sh", "-c", f"mkdir {data}/old && cp -a {data}/store.db* {data}/old/"])
    members.start(follower)
    for name, path in keys(members, 1, "after-store-copy"):
        members.cli("register", name, "--key", path)
    members.wait_same()
    members.stop(follower)
    kc.run(["sh", "-c", f"rm -f {data}/store.db* && mv {data}/old/* {data}/ && rmdir {data}/old"])
    members.start(follower)
    seq, chain = members.wait_same()
    kc.check(members.status(follower)["seq"] == seq == 8, f"the set back member is at {members.status(follower)}")
    #   2 of 3 gone: the one left refuses submissions, with a reason, and reads
    survivor = follower
    for name in members.names:
        if name != survivor:
            members.stop(name, signal.SIGKILL)
    out, err = kc.keyclone("register", todo[4][0], "--key", todo[4][1], "--dir", members.dir, "--server",
                           members.submit(survivor), "--timeout", "3000", expect=None)
    kc.check("no leader" in err and "majority" in err, f"a minority took a registration: {out} {err}")
    print(f"  a minority refused: {err.strip()[:160]}")
    out, _ = kc.keyclone("cluster", "status", "--dir", members.dir, expect=1)
    kc.check("NO LEADER" in out and out.count("DOWN") == 2, f"cluster status of a minority:\n{out}")
    listed, _ = kc.keyclone("list", "--dir", members.dir, "--server", members.submit(survivor))
    kc.check(all(name in listed for name, _ in todo[:4]), f"the minority does not serve reads: {listed}")
    agent = members.agents[0]
    st = agent.wait_seq(seq, fresh=False)
    kc.check(st["seq"] == seq, f"the agent is at {st['seq']}, not {seq}")
    agent.stop()
    members.stop(survivor)


def test_a_stranger_at_a_members_raft_port():
    members = Members()
    members.start_all()
    root = json.loads(kc.keyclone("root", "show", "--json", "--dir", members.dir)[0])
    target = root["servers"][1]
    stranger_refused(target["server_key"], f"tcp://127.0.0.1:{members.ports[target['name']] + 3}")
    kc.wait_for(lambda: members.status(target["name"])["cluster"]["refused"] >= 1, 10,
                what="the member counting the refusal")
    for name in members.running():
        members.stop(name)


def test_members_verify_what_a_rogue_leader_sends():
    """A member's CURVE key stolen: the thief runs a Raft member with it
    (raft_member, the engine alone) and leads, and proposes a batch signed
    by a key that is no operator's. Raft commits it; no member stores it."""
    members = Members(server_options=["--election", "3000"])
    root = json.loads(kc.keyclone("verify", "--json", os.path.join(members.dir, "root"))[0])
    table = os.path.join(members.root_dir, "raft-members")
    with open(table, "w") as f:
        for server in root["servers"]:
            f.write(f"{member_id(server['name'])} 127.0.0.1:{members.ports[server['name']] + 3} "
                    f"{server['server_key']}\n")
    rogue = subprocess.Popen([os.path.join(kc.TESTS, "raft_member"), str(member_id("c")),
                              os.path.join(members.root_dir, "rogue"),
                              table, os.path.join(members.dir, "servers", "c", "server", "curve_secret"), "300"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    kc._children.append(rogue)
    kc.check(rogue.stdout.readline().startswith("started"), "the rogue member did not start")
    members.start("a")
    members.start("b")
    kc.wait_for(lambda: members.status("a")["cluster"]["leader"] == "c", 30, interval=0.2,
                what="the rogue member leading")
    head = members.status("a")
    folder = os.path.join(members.root_dir, "keys")
    os.makedirs(folder, exist_ok=True)
    thief = kc.keyclone("keygen", "thief", "--operator", "--dir", folder)[0]
    node = kc.keyclone("keygen", "planted", "--dir", folder)[0].strip()
    forged = os.path.join(members.root_dir, "forged.kcb")
    #   Its chain hash as a leader computes it: only the signature is wrong
    chain, _ = kc.run([os.path.join(kc.TESTS, "kc_forge"), os.path.join(members.dir, "root"), forged, "planted",
                       node, os.path.join(folder, "thief_secret")],
                      env=dict(os.environ, KC_FORGE_CHAIN=f"{head['seq'] + 1}:{head['chain']}"))
    with open(forged, "rb") as f:
        batch = f.read()
    entry = (b"KCR1" + struct.pack(">Q", head["seq"]) + bytes.fromhex(head["chain"])
             + struct.pack(">QH", int(time.time() * 1000), 1)
             + struct.pack(">Q", head["seq"] + 1) + bytes.fromhex(chain.strip()) + b"\x00"
             + struct.pack(">I", len(batch)) + batch)
    rogue.stdin.write(f"apply-hex {entry.hex()}\n")
    rogue.stdin.flush()
    while True:
        line = rogue.stdout.readline()
        kc.check(line, "the rogue member ended")
        if line.startswith("appl"):
            break
    kc.check(line.startswith("applied "), f"Raft did not commit the rogue's entry: {line}")
    index = int(line.split()[1])
    for name in ("a", "b"):
        st = kc.wait_for(lambda: members.status(name)["cluster"]["applied_index"] >= index and members.status(name),
                         10, what=f"member {name} applying Raft entry {index}")
        kc.check(st["seq"] == head["seq"] and st["keys"] == head["keys"], f"member {name} stored something: {st}")
        line = next((l for l in members.log_text(name).splitlines() if "refused, nothing stored" in l), "")
        kc.check("not an operator" in line, f"member {name} refused it for another reason: {line}")
        print(f"  {name}: {line.split('kc_server: ', 1)[1][:150]}")
    out, _ = kc.keyclone("show", "planted", "--dir", members.dir, "--server", members.submit("a"), expect=None)
    kc.check("planted" not in out or "not found" in out, f"the planted key is served: {out}")
    rogue.stdin.close()
    rogue.wait(20)
    for name in members.running():
        members.stop(name)


def test_a_member_added_and_one_removed():
    """cluster add: a root change naming a fourth server, whose directory
    the command makes; started, the member is added by the leader and
    catches up. cluster remove of the first: the three left carry on, and
    keep a majority when one of them dies."""
    members = Members()
    members.start_all()
    agent = members.add_agent("node-0")
    agent.wait_seq(1)
    before = cold_syncs(members)
    todo = keys(members, 4, "grow")
    for name, path in todo[:2]:
        members.cli("register", name, "--key", path)
    port = next(p for p in free_base_ports(4) if p not in members.ports.values())
    #   Named "ab": between a and b in the root, which lists servers in order
    out, _ = members.cli("cluster", "add", f"ab=tcp://127.0.0.1:{port}")
    kc.check("server added: ab" in out and "root v2 accepted" in out, f"cluster add said:\n{out}")
    members.names.append("ab")
    members.ports["ab"] = port
    members.start("ab")
    seq, _ = members.wait_same()
    view = json.loads(members.cli("cluster", "status", "--json")[0])
    kc.check(view["members"] == 4 and view["answered"] == 4 and all(s["lag"] == 0 for s in view["servers"]),
             f"cluster status with d: {view}")
    kc.check(members.status("ab")["cluster"]["state"] == "follower", f"ab is {members.status('ab')['cluster']}")
    leader = members.leader()
    print(f"  ab added and caught up at seq {seq}; a removed while {leader} led")
    out, _ = members.cli("cluster", "remove", "a")
    kc.check("server removed: a" in out, f"cluster remove said:\n{out}")
    members.names.remove("a")
    members.stop("a")
    members.cli("register", todo[2][0], "--key", todo[2][1])
    #   ab, b and c: b dies, ab and c are a majority of three
    members.stop("b", signal.SIGKILL)
    members.cli("register", todo[3][0], "--key", todo[3][1])
    view = json.loads(members.cli("cluster", "status", "--json", expect=None)[0])
    kc.check([s["name"] for s in view["servers"]] == ["ab", "b", "c"] and view["leader"] in ("ab", "c"),
             f"cluster status after the removal: {view}")
    every_agent_has(members, [name for name, _ in todo])
    no_cold_sync(members, before)
    agent.stop()
    for name in members.running():
        kc.check(members.stop(name) == 0, f"member {name} did not stop cleanly")


def test_what_cannot_be_done_says_why():
    """Membership changes and member starts that cannot be, each refused
    with its reason, nothing submitted or started."""
    members = Members()
    members.start_all()
    for args, reason in ((["cluster", "add", "b=tcp://127.0.0.1:9"], "already names a server 'b'"),
                         (["cluster", "remove", "zz"], "names no server 'zz'"),
                         (["cluster", "remove", "a"], "keeps 3 members or more"),
                         (["cluster", "add", "e"], "is not NAME=tcp://HOST:PORT"),
                         (["cluster", "bogus"], "unknown subcommand 'bogus'")):
        out, err = members.cli(*args, expect=None)
        kc.check(reason in err, f"keyclone {' '.join(args)}: {out} {err}")
    kc.check(members.status("a")["root_version"] == 1, "a refused change reached the log")
    members.stop("a")
    server = os.path.join(kc.BIN, "keyclone-server")
    for extra, reason in ((["--cluster", "nonsense"], "is not name=host:port"),
                          (["--cluster", "a=not-an-address"], "'not-an-address' is not host:port")):
        out, err = kc.run([server, "--dir", os.path.join(members.dir, "servers", "a")] + extra, expect=1)
        kc.check(reason in out + err, f"keyclone-server {extra}: {out} {err}")
    members.start("a")                  # its directory unharmed
    kc.check(members.status("a")["seq"] == 0, "member a lost its state")
    for name in members.running():
        members.stop(name)


if __name__ == "__main__":
    kc.main([test_kill_the_leader_while_registering, test_a_partitioned_leader_acknowledges_nothing,
             test_rolling_restart_keeps_agents_fresh,
             test_a_wiped_or_restored_member_catches_up_and_a_minority_refuses,
             test_a_stranger_at_a_members_raft_port, test_members_verify_what_a_rogue_leader_sends,
             test_a_member_added_and_one_removed, test_what_cannot_be_done_says_why])
