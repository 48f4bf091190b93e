#!/usr/bin/python3
"""Key rotation on a node (issue 12): `keyclone rotate` makes a new key and
asks, authenticated by the current key, for it to replace it; an operator
approves it like an enrolment, which registers the new key and ends the old
one after the overlap in one batch; the node's agent then swaps the node's
certificate files (the old pair kept as node.old until the overlap ends),
with nobody running `keyclone rotate` again; `rotate --wait` returns once
the swap is done. A service protected by
kc_auth keeps answering a client that switches keys without one failed
request; once the overlap is over, the connection still using the old key
is closed by expiry, and the node's own agent connects with the new key.
"""
import os
import re
import threading
import time

import zmq
import zmq.auth
import zmq.utils.monitor

import kc
from cluster import Cluster, free_base_port

C = Cluster(server_options=["--heartbeat", "200"])
KEYS = os.path.join(C.root_dir, "keys")
ROOT = os.path.join(C.dir, "root")
OVERLAP = 3


def public_of(secret_file):
    return zmq.auth.load_certificate(secret_file)[0]


class Client(threading.Thread):
    """An application on the node: a request every 20 ms with the key in
    node_secret; when the file holds a new key it connects with it and
    moves over once that answers, keeping the old connection open (idle)
    to see what becomes of it."""

    def __init__(self, node_dir, server_key, endpoint):
        super().__init__(daemon=True)
        self.secret = os.path.join(node_dir, "node_secret")
        self.server_key, self.endpoint = server_key, endpoint
        self.ctx = zmq.Context()
        self.replies, self.failures, self.users = 0, [], []
        self.old, self.old_events = None, []
        self.stop = False

    def socket(self):
        public, secret = zmq.auth.load_certificate(self.secret)
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, self.server_key
        s.connect(self.endpoint)
        return public, s

    def ask(self, s, n, key):
        """One request; notes which key it went with and whom the service saw."""
        s.send(f"req-{n}".encode())
        if s.poll(3000):
            reply = s.recv().decode()
            self.replies += 1
            self.users.append((key.decode(), reply.split("|")[1]))
            return True
        self.failures.append(n)
        return False

    def run(self):
        key, s = self.socket()
        n = 0
        while not self.stop:
            n += 1
            if public_of(self.secret) != key:
                new_key, new = self.socket()
                if self.ask(new, n, new_key):    # make before break
                    monitor = s.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
                    self.old = (s, monitor)
                    key, s = new_key, new
                continue
            self.ask(s, n, key)
            if self.old and self.old[1].poll(0):
                self.old_events.append((time.time(), zmq.utils.monitor.recv_monitor_message(self.old[1])["event"]))
            time.sleep(0.02)


def test_rotation_under_traffic():
    C.start_server()
    app_agent = C.add_agent("app-host")
    node = C.add_agent("client-1")                 # the rotating node, with its own agent
    C.cli("register", "client-1", "--key", node.key, "--tag", "role=app")
    C.wait_converged()
    os.makedirs(KEYS)
    server_key = kc.keyclone("keygen", "app-server", "--dir", KEYS)[0].strip()
    endpoint = f"tcp://127.0.0.1:{free_base_port()}"
    log = os.path.join(C.root_dir, "app.log")
    app = kc.spawn([os.path.join(kc.TESTS, "kc_zap_server"), "--cert", os.path.join(KEYS, "app-server"),
                    "--cache", app_agent.cache, "--events", app_agent.events, "--bind", endpoint], log=log)
    kc.wait_for(lambda: "ready" in open(log).read(), 10, what="the service to start")
    client = Client(node.dir, server_key.encode(), endpoint)
    client.start()
    kc.wait_for(lambda: client.replies >= 5, 10, what="the client's first replies")

    out, _ = kc.keyclone("rotate", "--overlap", f"{OVERLAP}s", "--dir", node.dir, "--root", ROOT)
    kc.check(re.search(r"^  replaces     [0-9A-F]{8} \(valid 3s more once approved\)$", out, re.M), out)
    code = re.search(r"code +(\S+)", out).group(1)
    new_key = re.search(r"^  key +(\S+)$", out, re.M).group(1)
    kc.check(os.path.exists(os.path.join(node.dir, "node.next_secret")), "the new key is kept as node.next")
    listed = C.cli("pending")[0]
    kc.check(re.search(r"^client-1 .* role=app  \(replaces [0-9A-F]{8}, valid 3s more\)$", listed, re.M), listed)
    # still pending: the old key is the node's, the service answers it as before
    before = client.replies
    kc.wait_for(lambda: client.replies > before + 3, 10, what="replies while the rotation waits")
    out, _ = C.cli("approve", "client-1", "--code", code)
    kc.check("stays valid 3s more" in out, out)
    approved = time.time()
    # nobody comes back to the node: its agent puts the new key in place
    # once its cache holds the registration, and connects with it
    kc.wait_for(lambda: "put it in place" in node.log_text(), 20, what="the node's agent to swap the key")
    kc.check(public_of(os.path.join(node.dir, "node_secret")).decode() == new_key, "node_secret holds the new key")
    kc.check(public_of(os.path.join(node.dir, "node")).decode() == new_key, "node holds the new key")
    kc.check(public_of(os.path.join(node.dir, "node.old_secret")).decode() == node.key, "node.old holds the old key")
    kc.check(not os.path.exists(os.path.join(node.dir, "node.next_secret")), "node.next is gone")
    until = int(open(os.path.join(node.dir, "node.old.until")).read())
    kc.check(abs(until - (approved + OVERLAP)) <= 2, f"node.old.until {until}, approved at {approved:.0f}")
    # running rotate again now finishes nothing and starts nothing
    out, _ = kc.keyclone("rotate", "--overlap", f"{OVERLAP}s", "--dir", node.dir, "--root", ROOT)
    kc.check("holds the new key" in out and "Rotate again after that" in out, out)
    kc.check(not os.path.exists(os.path.join(node.dir, "node.next")), "no new rotation began")

    # the client moves to the new key; the old connection is closed by expiry
    kc.wait_for(lambda: client.users and client.users[-1] == (new_key, "client-1"), 10,
                what="replies to the new key")
    kc.wait_for(lambda: client.old_events, OVERLAP + 10, what="the old key's connection to be closed")
    closed_at, event = client.old_events[0]
    kc.check(event == zmq.EVENT_DISCONNECTED and closed_at - approved >= OVERLAP - 1,
             f"old connection: event {event} {closed_at - approved:.1f} s after the approval")
    kc.wait_for(lambda: "closed the connection of client-1" in open(log).read(), 10, what="kc_auth's close line")
    time.sleep(0.5)
    client.stop = True
    client.join(10)
    kc.check(not client.failures, f"requests without a reply during the rotation: {client.failures}")
    kc.check(client.replies > 20, f"only {client.replies} replies")
    print(f"    {client.replies} requests answered, 0 failed; old connection closed "
          f"{closed_at - approved:.1f} s after the approval (overlap {OVERLAP} s)")
    # the node's agent connected with the new key when it swapped it, and
    # removed the old pair when the overlap ended
    text = node.log_text()
    kc.check("this node's key changed" in text and "connecting with this node's new key" in text, text)
    kc.wait_for(lambda: not os.path.exists(os.path.join(node.dir, "node.old_secret")), 10,
                what="the agent to remove node.old after the overlap")
    kc.check(not os.path.exists(os.path.join(node.dir, "node.old")), "node.old is gone")
    kc.check(not os.path.exists(os.path.join(node.dir, "node.old.until")), "node.old.until is gone")
    kc.check("the old key's overlap is over: removed" in node.log_text(), node.log_text())
    node.wait_seq(C.server_status()["seq"], 30)
    kc.check(node.status()["state"] == "fresh", node.status())
    old = app_agent.lookup(node.key)
    kc.check(old["status"] != "trusted", f"the old key after the overlap: {old}")
    kc.check(app_agent.lookup(new_key)["status"] == "trusted", "the new key is trusted")
    kc.stop(app)


def test_rotate_wait():
    """rotate --wait returns once the operator approved and the new key is in
    place (here the agent may swap it first: either way, once)."""
    node = C.add_agent("worker-1")
    C.wait_converged()
    proc = kc.spawn([kc.KEYCLONE, "rotate", "--wait", "--overlap", "1h", "--dir", node.dir, "--root", ROOT,
                     "--agent", node.endpoint], log=os.path.join(C.root_dir, "rotate-wait.log"))
    kc.wait_for(lambda: "worker-1" in C.cli("pending")[0], 20, what="the rotation request")
    kc.check(proc.poll() is None, "rotate --wait returned before the approval")
    C.cli("approve", "worker-1")
    kc.check(proc.wait(30) == 0, open(os.path.join(C.root_dir, "rotate-wait.log")).read())
    out = open(os.path.join(C.root_dir, "rotate-wait.log")).read()
    kc.check("worker-1 now uses its new key" in out, out)
    new_key = public_of(os.path.join(node.dir, "node_secret")).decode()
    kc.check(new_key != node.key, "node_secret holds a new key")
    kc.check(public_of(os.path.join(node.dir, "node.old_secret")).decode() == node.key, "node.old: the old key")
    kc.wait_for(lambda: node.lookup(new_key)["status"] == "trusted", 20, what="the new key trusted")
    kc.check(node.lookup(node.key)["status"] == "trusted", "the old key is trusted through the overlap")
    kc.wait_for(lambda: "this node's key changed" in node.log_text(), 20, what="the agent to take the new key")


def test_rotate_by_operators():
    """An operator rotates a node's key without approving a request:
    rotate --replace OLD --new NEW signs the new key's registration and the
    old key's end in one batch; the node's agent swaps its KEY.next in."""
    node = C.add_agent("worker-2")
    C.wait_converged()
    out, _ = kc.keyclone("rotate", "--overlap", "1h", "--dir", node.dir, "--root", ROOT)   # makes node.next
    next_file = os.path.join(node.dir, "node.next")
    new_key = public_of(next_file).decode()
    old_fp = re.search(r"replaces     ([0-9A-F]{8})", out).group(1)
    # refusals first: a key that is not registered, the same key twice, half the options
    stray = kc.keyclone("keygen", "stray", "--dir", C.root_dir)[0].strip()
    _, err = C.cli("rotate", "--replace", stray, "--new", next_file, expect=1)
    kc.check("is not a registered key: nothing to rotate" in err, err)
    _, err = C.cli("rotate", "--replace", old_fp, "--new", node.key, expect=1)
    kc.check("--new is the key --replace names" in err, err)
    _, err = C.cli("rotate", "--replace", old_fp, expect=2)
    kc.check("--replace OLD --new NEW" in err, err)
    partial = os.path.join(C.root_dir, "rotation.kcb")
    out, _ = C.cli("rotate", "--replace", old_fp, "--new", next_file, "--out", partial)
    kc.check(out.startswith(f"wrote {partial}: complete"), out)
    out, _ = C.cli("rotate", "--replace", old_fp, "--new", next_file, "--overlap", "1h")
    m = re.match(r"rotated worker-2: ([0-9A-F]{8}) registered at seq (\d+); the key it replaces, ([0-9A-F]{8}), "
                 r"stays valid 60m more$", out.strip())
    kc.check(m and m.group(3) == old_fp, out)
    # the request the node made is answered by the registration
    kc.check("worker-2" not in C.cli("pending")[0], "the rotation request is gone")
    kc.wait_for(lambda: public_of(os.path.join(node.dir, "node_secret")).decode() == new_key, 20,
                what="the agent to swap the key in")
    kc.wait_for(lambda: node.lookup(new_key)["status"] == "trusted", 20, what="the new key trusted")
    old = node.lookup(node.key)
    kc.check(old["status"] == "trusted" and old.get("not_after", 0) > time.time() + 3000, old)
    kc.wait_for(lambda: "this node's key changed" in node.log_text(), 20, what="the agent to connect with it")


def test_rotation_refusals():
    stranger = os.path.join(C.root_dir, "stranger")
    os.makedirs(stranger)
    kc.keyclone("keygen", "node", "--dir", stranger)
    _, err = kc.keyclone("rotate", "--dir", stranger, "--root", ROOT, expect=1)
    kc.check("refused: only a registered key in force can ask to be replaced" in err, err)
    _, err = kc.keyclone("rotate", "--dir", stranger, "--root", ROOT, "--overlap", "400d", expect=2)
    kc.check("--overlap" in err, err)
    # a rotation whose old key was revoked meanwhile is not approved
    node = C.add_agent("db-9", start=False)
    out, _ = kc.keyclone("rotate", "--dir", node.dir, "--root", ROOT)
    C.cli("revoke", "db-9")
    _, err = C.cli("approve", "db-9", expect=1)
    kc.check("is not registered any more: not approved" in err, err)


if __name__ == "__main__":
    kc.main([test_rotation_under_traffic, test_rotate_wait, test_rotate_by_operators, test_rotation_refusals])
