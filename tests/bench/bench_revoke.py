#!/usr/bin/python3
"""bench_revoke - revocation to closed connection (issue 4): p50 and p99 over
100 trials on loopback; target p99 <= 50 ms.

One server, one agent, and an application (build/tests/kc_zap_server: a
libzmq CURVE ROUTER whose ZAP handler is kc_auth over the agent's cache).
Each trial connects a stock pyzmq CURVE DEALER with a registered key, gets
one reply through the server, then runs `keyclone revoke NAME` and waits for
the DEALER's monitor to report DISCONNECTED. Printed per trial set:

  from start   `keyclone revoke` spawned -> connection closed: what an
               operator sees (CLI start-up, signing, the server's durable
               commit, publication, the agent's verify and apply, the
               handler's close);
  from return  `keyclone revoke` returned -> connection closed: negative
               when the connection closed before the CLI had even exited;
  beside them  the revoke command's own duration (signature + round trip +
               fsync), the peer every figure above contains.

czmq's zauth, the common practice this replaces, never closes a connection
whose certificate file is removed: its figure is "never".
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq                                  # noqa: E402
import zmq.utils.monitor                    # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster, free_base_port  # noqa: E402

TRIALS = int(os.environ.get("KC_BENCH_REVOKE_TRIALS", "100"))
TARGET_P99_MS = 50.0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def one_trial(cluster, ctx, name, public, secret, server_key, ep):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server_key
    monitor = s.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    try:
        return s_trial(cluster, s, monitor, name, ep)
    finally:
        s.disable_monitor()
        monitor.close()
        s.close()


def s_trial(cluster, s, monitor, name, ep):
    s.connect(ep)
    s.send(b"ping")
    if not s.poll(5000):
        raise RuntimeError(f"{name}: no reply before revocation")
    s.recv_multipart()
    started = time.monotonic()
    proc = subprocess.Popen([os.path.join(kc.BIN, "keyclone"), "revoke", name, "--dir", cluster.dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    closed = None
    deadline = started + 5
    while closed is None and time.monotonic() < deadline:
        if monitor.poll(100):
            event = zmq.utils.monitor.recv_monitor_message(monitor)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                closed = time.monotonic()
    _, err = proc.communicate(timeout=30)
    returned = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"keyclone revoke {name} failed: {err.decode()}")
    if closed is None:
        raise RuntimeError(f"{name}: the connection was not closed within 5 s of the revocation")
    return (closed - started) * 1000, (closed - returned) * 1000, (returned - started) * 1000


def main():
    cluster = Cluster(server_options=["--heartbeat", "200"])
    cluster.start_server()
    agent = cluster.add_agent(options=["--check-interval", "0"])
    keys_dir = os.path.join(cluster.root_dir, "keys")
    server_key = kc.keyclone("keygen", "app-server", "--dir", keys_dir)[0].strip()
    clients = [(f"trial-{i}",) + zmq.curve_keypair() for i in range(TRIALS)]
    listing = os.path.join(cluster.root_dir, "clients.txt")
    with open(listing, "w") as f:
        for name, public, _ in clients:
            f.write(f"{name}={public.decode()},tag=role=bench\n")
    cluster.cli("register", "--from", listing)
    cluster.wait_converged()
    ep = f"tcp://127.0.0.1:{free_base_port()}"
    log = os.path.join(cluster.root_dir, "app.log")
    app = kc.spawn([os.path.join(kc.TESTS, "kc_zap_server"), "--cert", os.path.join(keys_dir, "app-server"),
                    "--cache", agent.cache, "--events", agent.events, "--bind", ep], log=log)
    kc.wait_for(lambda: "ready" in open(log).read(), 10, what="the application to start")
    ctx = zmq.Context()
    rows = []
    try:
        for name, public, secret in clients:
            rows.append(one_trial(cluster, ctx, name, public, secret, server_key.encode(), ep))
    finally:
        ctx.destroy(linger=0)
        kc.stop(app)
    from_start = [r[0] for r in rows]
    from_return = [r[1] for r in rows]
    command = [r[2] for r in rows]
    print(f"  revocation -> connection closed, {len(rows)} trials, loopback, 1 agent, stock pyzmq client")
    for label, values in (("from `keyclone revoke` start", from_start),
                          ("from `keyclone revoke` return", from_return),
                          ("beside it: the revoke command itself", command)):
        print(f"    {label:<40} p50 {statistics.median(values):7.1f} ms   "
              f"p99 {percentile(values, 0.99):7.1f} ms   max {max(values):7.1f} ms")
    p99 = percentile(from_start, 0.99)
    verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
    print(f"  target p99 <= {TARGET_P99_MS:.0f} ms (from start): {p99:.1f} ms, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
