#!/usr/bin/python3
"""The agent's local surface for applications that run as another user:
the cache is created 0640 and the ipc sockets get a settable mode and group
(--socket-mode, --group); an application in that group (run here as user
nobody with the group added, through setpriv) asks the agent and reads the
cache through kc_auth; one outside it is refused at once with the reason,
as is a lookup against a missing socket or one nobody listens on."""
import os
import socket
import stat
import subprocess
import sys
import time

import zmq
import zmq.auth

import kc
from cluster import Cluster, free_base_port

if os.geteuid() != 0:
    print("skipped: running as another user and giving files a group needs root")
    sys.exit(0)

GID = 4242                                   # a group of the applications
NOBODY = 65534
C = Cluster(server_options=["--heartbeat", "200"])
KEYS = os.path.join(C.root_dir, "keys")


def as_nobody(args, groups=(), **kwargs):
    """Runs a command as user nobody, with these supplementary groups."""
    wrapper = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
               "--groups=" + (",".join(str(g) for g in groups) if groups else str(NOBODY))]
    return subprocess.run(wrapper + list(args), capture_output=True, text=True, timeout=30, **kwargs)


def test_setup():
    os.chmod(C.root_dir, 0o755)              # let other users reach the agent's directory
    C.start_server()
    agent = C.add_agent(options=["--group", str(GID)])
    os.chmod(os.path.dirname(agent.dir), 0o755)
    C.cli("register", "web-1", "--key", kc.keyclone("keygen", "web-1", "--dir", KEYS)[0].strip())
    C.wait_converged()


def test_modes_and_groups():
    agent = C.agents[0]
    for path, mode in ((agent.cache, 0o640), (os.path.join(agent.dir, "agent.ipc"), 0o660),
                       (os.path.join(agent.dir, "events.ipc"), 0o660)):
        info = os.stat(path)
        kc.check(stat.S_IMODE(info.st_mode) == mode and info.st_gid == GID,
                 f"{path}: mode {stat.S_IMODE(info.st_mode):04o} gid {info.st_gid}")
    # the server's store too is no longer world-readable
    info = os.stat(os.path.join(C.dir, "server", "store.db"))
    kc.check(stat.S_IMODE(info.st_mode) == 0o640, f"store.db mode {stat.S_IMODE(info.st_mode):04o}")


def test_another_user_in_the_group_asks_the_agent():
    agent = C.agents[0]
    result = as_nobody([kc.KEYCLONE, "lookup", "web-1", "--agent", agent.endpoint], groups=[GID])
    kc.check(result.returncode == 0 and result.stdout.startswith("trusted"), result)


def test_another_user_outside_the_group_is_told_why():
    agent = C.agents[0]
    started = time.monotonic()
    result = as_nobody([kc.KEYCLONE, "lookup", "web-1", "--agent", agent.endpoint])
    took = time.monotonic() - started
    kc.check(result.returncode == 1 and "not allowed to connect to the agent" in result.stderr
             and f"gid {GID}" in result.stderr, result)
    print(f"    refused in {1000 * took:.0f} ms: {result.stderr.strip()}")


def test_missing_and_dead_sockets_are_told_at_once():
    out, err = kc.keyclone("lookup", "web-1", "--agent", f"ipc://{C.root_dir}/nowhere/agent.ipc", expect=5)
    kc.check("no such socket" in err, err)
    dead = os.path.join(C.root_dir, "dead.ipc")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)
    s.close()                                # the file stays, nothing listens
    out, err = kc.keyclone("status", "--agent", f"ipc://{dead}", expect=5)
    kc.check("nothing listens" in err, err)


def test_an_application_in_the_group_reads_the_cache():
    """kc_auth in a server running as nobody (with the group) answers ZAP
    from the agent's cache."""
    agent = C.agents[0]
    server_key = kc.keyclone("keygen", "app", "--dir", KEYS)[0].strip()
    for name in ("app", "app_secret"):
        os.chown(os.path.join(KEYS, name), NOBODY, NOBODY)
    os.chmod(KEYS, 0o755)
    ep = f"tcp://127.0.0.1:{free_base_port()}"
    log = os.path.join(C.root_dir, "app.log")
    wrapper = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={GID}"]
    proc = kc.spawn(wrapper + [os.path.join(kc.TESTS, "kc_zap_server"), "--cert", os.path.join(KEYS, "app"),
                               "--cache", agent.cache, "--events", agent.events, "--bind", ep], log=log)
    kc.wait_for(lambda: "ready" in open(log).read(), 10, what="the application to start")
    public, secret = zmq.auth.load_certificate(os.path.join(KEYS, "web-1_secret"))
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server_key.encode()
    s.connect(ep)
    s.send(b"hi")
    reply = s.recv_multipart()[-1] if s.poll(5000) else None
    s.close()
    kc.stop(proc)
    kc.check(reply == b"echo:hi|web-1|web-1|", f"reply {reply!r}; app log:\n{open(log).read()}")


if __name__ == "__main__":
    kc.main([test_setup, test_modes_and_groups, test_another_user_in_the_group_asks_the_agent,
             test_another_user_outside_the_group_is_told_why, test_missing_and_dead_sockets_are_told_at_once,
             test_an_application_in_the_group_reads_the_cache])
