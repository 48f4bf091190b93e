#!/usr/bin/python3
"""The cluster's engine on trial: libraft 0.15 members (server/raft/kc_raft,
driven from a zloop by tests/it/raft_member.c, as the server will) whose Raft
traffic goes through kc_raft_transport, CURVE between the members' keys. Three members elect a leader and apply entries in one order on all;
an unknown key is refused at a member's Raft port (ERROR 400, as libzmq
reports it), and so is a plaintext peer speaking libraft's own TCP handshake;
the leader killed with SIGKILL is replaced and the survivors go on; the dead
member restarts from its directory and catches up."""
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kc  # noqa: E402
from cluster import stranger_refused  # noqa: E402

MEMBER = os.path.join(kc.TESTS, "raft_member")


class Member:
    def __init__(self, cluster, id):
        self.cluster, self.id = cluster, id
        self.dir = os.path.join(cluster.work, f"raft-{id}")
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.lines = queue.Queue()
        self.fsm = []
        self.log = open(os.path.join(self.cluster.work, f"member-{self.id}.log"), "a")
        self.proc = subprocess.Popen([MEMBER, str(self.id), self.dir, self.cluster.members,
                                      os.path.join(self.cluster.work, f"m{self.id}_secret")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, start_new_session=True)
        kc._children.append(self.proc)
        threading.Thread(target=self._read, args=(self.proc, self.lines, self.fsm), daemon=True).start()
        self.expect("started")

    def _read(self, proc, lines, fsm):
        for line in proc.stdout:
            self.log.write(line)
            self.log.flush()
            if line.startswith("fsm "):
                fsm.append(line.split(" ", 2)[2].rstrip("\n"))
            else:
                lines.put(line.rstrip("\n"))

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"member {self.id}: no '{prefix}' line; log in {self.log.name}")

    def status(self):
        self.send("status")
        words = self.expect("status").split()
        return {"state": words[1], "leader": int(words[3]), "applied": int(words[5]), "refused": int(words[7]),
                "term": int(words[9])}

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        self.proc.stdin.close()         # the member closes cleanly when its stdin ends
        kc.check(self.proc.wait(timeout=20) == 0, f"member {self.id} did not stop cleanly")


class Cluster:
    def __init__(self, size=3):
        self.work = kc.tempdir("kc-raft-")
        self.ports = {i: kc.free_port() for i in range(1, size + 1)}
        self.keys = {}
        for i in self.ports:
            out, _ = kc.run([kc.KEYCLONE, "keygen", f"m{i}", "--dir", self.work])
            self.keys[i] = out.strip()
        self.members = os.path.join(self.work, "members")
        with open(self.members, "w") as f:
            for i, port in self.ports.items():
                f.write(f"{i} 127.0.0.1:{port} {self.keys[i]}\n")
        self.nodes = {i: Member(self, i) for i in self.ports}

    def leader(self, among=None, timeout=20):
        """The id every running member (of among) agrees leads."""
        among = among or list(self.nodes)
        seen = None

        def agreed():
            nonlocal seen
            seen = [self.nodes[i].status() for i in among]
            leaders = {s["leader"] for s in seen}
            return len(leaders) == 1 and 0 not in leaders and \
                any(s["state"] == "leader" for s in seen)
        kc.wait_for(agreed, timeout=timeout, interval=0.1, what=f"one leader among {among}: {seen}")
        return seen[0]["leader"]

    def apply(self, leader, texts):
        for text in texts:
            self.nodes[leader].send(f"apply {text}")
            line = self.nodes[leader].expect("appl")
            kc.check(line.startswith("applied "), f"apply {text} on member {leader}: {line}")


def test_three_members_agree_and_refuse_strangers():
    cluster = Cluster()
    for node in cluster.nodes.values():
        node.start()
    leader = cluster.leader()
    texts = [f"entry-{i}" for i in range(40)]
    cluster.apply(leader, texts)
    for node in cluster.nodes.values():
        kc.wait_for(lambda: len(node.fsm) >= len(texts), what=f"member {node.id} applying 40 entries")
        kc.check(node.fsm == texts, f"member {node.id} applied {node.fsm}, not {texts}")
    follower = next(i for i in cluster.nodes if i != leader)
    cluster.nodes[follower].send("apply not-the-leader")
    line = cluster.nodes[follower].expect("apply")
    kc.check(line.startswith("apply failed: ") and "leader" in line, f"a follower took an entry: {line}")
    port = cluster.ports[follower]

    #   A stranger's CURVE key at a member's Raft port: ERROR 400
    stranger_refused(cluster.keys[follower], f"tcp://127.0.0.1:{port}")

    #   libraft's own plaintext handshake (protocol 1, id, address): closed
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        address = f"127.0.0.1:{cluster.ports[leader]}".encode().ljust(24, b"\0")
        plain.sendall(struct.pack("<QQQ", 1, leader, len(address)) + address)
        got = b""
        while True:
            chunk = plain.recv(4096)
            if not chunk:
                break
            got += chunk
        kc.check(got[:1] == b"\xff" and len(got) <= 64,
                 f"a plaintext Raft peer got {got[:80]!r} before the member closed the connection")
    status = cluster.nodes[follower].status()
    kc.check(status["refused"] >= 2, f"member {follower} counted {status['refused']} refusals, not 2")
    #   The cluster is unharmed
    cluster.apply(leader, ["after-strangers"])
    for node in cluster.nodes.values():
        kc.wait_for(lambda: node.fsm[-1:] == ["after-strangers"], what=f"member {node.id} applying after")
    for node in cluster.nodes.values():
        node.stop()


def test_the_leader_dies_and_comes_back():
    cluster = Cluster()
    for node in cluster.nodes.values():
        node.start()
    leader = cluster.leader()
    cluster.apply(leader, [f"before-{i}" for i in range(10)])
    cluster.nodes[leader].kill()
    survivors = [i for i in cluster.nodes if i != leader]
    started = time.time()
    new = cluster.leader(among=survivors)
    kc.check(new != leader, "the dead member still leads")
    cluster.apply(new, [f"after-{i}" for i in range(10)])
    print(f"  new leader {new} applying within {time.time() - started:.2f} s of the kill")
    expected = [f"before-{i}" for i in range(10)] + [f"after-{i}" for i in range(10)]
    for i in survivors:
        node = cluster.nodes[i]
        kc.wait_for(lambda: len(node.fsm) >= 20, what=f"member {i} applying 20 entries")
        kc.check(node.fsm == expected, f"member {i} applied {node.fsm}")
    #   The dead member restarts from its directory and catches up
    cluster.nodes[leader].start()
    node = cluster.nodes[leader]
    kc.wait_for(lambda: len(node.fsm) >= 20, timeout=30, what=f"restarted member {leader} catching up")
    kc.check(node.fsm == expected, f"restarted member {leader} applied {node.fsm}")
    for node in cluster.nodes.values():
        node.stop()


def test_a_member_that_cannot_start_says_why():
    """A Raft directory that cannot be made, or a member list with an address
    that is not host:port: the member exits 1 with the reason."""
    cluster = Cluster()
    secret = os.path.join(cluster.work, "m1_secret")
    result = subprocess.run([MEMBER, "1", "/proc/no-such/raft", cluster.members, secret], capture_output=True,
                            text=True, timeout=30)
    kc.check(result.returncode == 1 and "cannot make the Raft directory /proc/no-such/raft" in result.stderr,
             f"exit {result.returncode}: {result.stderr}")
    bad = os.path.join(cluster.work, "bad-members")
    with open(bad, "w") as f:
        f.write(f"1 localhost {cluster.keys[1]}\n")
    result = subprocess.run([MEMBER, "1", os.path.join(cluster.work, "raft-x"), bad, secret], capture_output=True,
                            text=True, timeout=30)
    kc.check(result.returncode == 1 and "raft address 'localhost' is not host:port" in result.stderr,
             f"exit {result.returncode}: {result.stderr}")


if __name__ == "__main__":
    kc.main([test_three_members_agree_and_refuse_strangers, test_the_leader_dies_and_comes_back,
             test_a_member_that_cannot_start_says_why])
