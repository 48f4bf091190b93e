"""A real keyclone deployment in a temp dir, for tests and benchmarks: a
keyclone directory (operators, root, server keys), one keyclone-server and
any number of keyclone-agent processes, all on 127.0.0.1 / ipc."""
import json
import os
import random
import signal
import socket
import subprocess
import time

import zmq

import kc


def _ports_free(base, count=3):
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port():
    for _ in range(200):
        base = random.randrange(20000, 60000)
        if _ports_free(base):
            return base
    raise RuntimeError("no three free consecutive ports")


class Agent:
    def __init__(self, cluster, name, options):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.root_dir, "agents", name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "agent.log")
        self.key = kc.keyclone("keygen", "node", "--dir", self.dir)[0].strip()
        self.endpoint = f"ipc://{self.dir}/agent.ipc"
        self.events = f"ipc://{self.dir}/events.ipc"
        self.cache = os.path.join(self.dir, "agent.db")
        self.options = options
        self.proc = None

    def start(self):
        args = [os.path.join(kc.BIN, "keyclone-agent"), "--dir", self.dir,
                "--root", os.path.join(self.cluster.dir, "root")] + list(self.options)
        self.proc = kc.spawn(args, log=self.log)
        return self

    def stop(self, sig=signal.SIGTERM):
        return kc.stop(self.proc, sig)

    def request(self, command, argument=None, timeout=5000):
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.endpoint)
        frames = [command.encode()] + ([argument if isinstance(argument, bytes) else argument.encode()]
                                       if argument is not None else [])
        s.send_multipart(frames)
        if not s.poll(timeout):
            s.close()
            raise TimeoutError(f"agent {self.name} did not answer {command}")
        reply = s.recv_multipart()
        s.close()
        if reply[0] != b"OK":
            raise RuntimeError(reply[1].decode())
        return json.loads(reply[1])

    def status(self):
        return self.request("STATUS")

    def lookup(self, key):
        return self.request("LOOKUP", key)

    def wait_seq(self, seq, timeout=30, fresh=True):
        def reached():
            try:
                st = self.status()
            except (TimeoutError, RuntimeError):
                return None
            if st["seq"] >= seq and not st["syncing"] and (not fresh or st["state"] == "fresh"):
                return st
            return None
        try:
            return kc.wait_for(reached, timeout, what=f"agent {self.name} at seq {seq}")
        except AssertionError as error:
            #   what the agent said is what explains it
            raise AssertionError(f"{error}\n--- the end of {self.log}:\n{self.log_text()[-3000:]}") from None

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class Directory:
    """What a keyclone directory's tests do with it, whatever serves it:
    the CLI with --dir, and agents whose keys it registers."""

    def operator(self, index=0):
        return os.path.join(self.dir, "operators", self.operator_names[index])

    def cli(self, *args, expect=0):
        return kc.keyclone(*args, "--dir", self.dir, expect=expect)

    def add_agent(self, name=None, register=True, start=True, options=()):
        agent = Agent(self, name or f"agent-{len(self.agents) + 1}", options)
        if register:
            self.cli("register", agent.name, "--key", agent.key, "--tag", "role=agent")
        self.agents.append(agent)
        if start:
            agent.start()
        return agent


class Cluster(Directory):
    def __init__(self, operators=1, threshold=1, names=None, server_options=(), init_options=()):
        self.root_dir = kc.tempdir()
        self.dir = os.path.join(self.root_dir, "dir")
        self.base = free_base_port()
        args = ["init", "--dir", self.dir, "--operators", str(operators), "--threshold", str(threshold),
                "--endpoint", f"tcp://127.0.0.1:{self.base}"]
        if names:
            args += ["--names", ",".join(names)]
        kc.keyclone(*args, *init_options)
        self.operator_names = names or [f"op{i + 1}" for i in range(operators)]
        self.server_options = list(server_options)
        self.server = None
        self.server_log = os.path.join(self.root_dir, "server.log")
        self.agents = []
        root = json.loads(kc.keyclone("verify", "--json", os.path.join(self.dir, "root"))[0])
        self.server_key = root["server_key"]
        self.submit_endpoint = root["submit"]


    def start_server(self, *extra):
        args = [os.path.join(kc.BIN, "keyclone-server"), "--dir", self.dir] + self.server_options + list(extra)
        self.server = kc.spawn(args, log=self.server_log)
        kc.wait_for(self._server_up, 10, what="keyclone-server to answer")
        return self.server

    def _server_up(self):
        try:
            return self.server_status(timeout=500)
        except Exception:
            if self.server.poll() is not None:
                raise RuntimeError("keyclone-server exited:\n" + self.server_log_text())
            return None

    def stop_server(self, sig=signal.SIGTERM):
        return kc.stop(self.server, sig)

    def server_status(self, timeout=5000):
        # exit 3: the root in force expires within a week (a test root may)
        result = kc.run([kc.KEYCLONE, "status", "--server", "--json", "--dir", self.dir,
                         "--timeout", str(timeout)], expect=None)
        return json.loads(result[0])

    def server_log_text(self):
        with open(self.server_log, errors="replace") as f:
            return f.read()


    def burst(self, batches, records=1, rate=0, window=64, prefix="burst", keys_out=None,
              acks_out=None, revoke_keys=None, expect=0, timeout=120):
        args = [os.path.join(kc.TESTS, "kc_burst"), "--root", os.path.join(self.dir, "root"),
                "--operator", self.operator(0), "--batches", str(batches), "--records", str(records),
                "--window", str(window), "--prefix", prefix]
        if rate:
            args += ["--rate", str(rate)]
        if keys_out:
            args += ["--keys-out", keys_out]
        if acks_out:
            args += ["--acks-out", acks_out]
        if revoke_keys:
            args += ["--revoke-keys", revoke_keys]
        out, _ = kc.run(args, expect=expect, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def wait_converged(self, agents=None, timeout=60):
        """Every agent at the server's seq with the server's chain."""
        status = self.server_status()
        for agent in agents or self.agents:
            st = agent.wait_seq(status["seq"], timeout)
            kc.check(st["seq"] == status["seq"] and st["chain"] == status["chain"],
                     f"agent {agent.name} at {st['seq']}/{st['chain'][:16]}, server at "
                     f"{status['seq']}/{status['chain'][:16]}")
        return status


def submit_raw(cluster, frames, timeout=5000, server_key=None):
    """Sends raw frames on the submission channel with a fresh CURVE key;
    returns the reply frames, or None on timeout."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    public, secret = zmq.curve_keypair()
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.curve_serverkey = (server_key or cluster.server_key).encode()
    s.connect(cluster.submit_endpoint)
    s.send_multipart(frames)
    reply = s.recv_multipart() if s.poll(timeout) else None
    s.close()
    return reply


def free_base_ports(count, width=4):
    """count bases of width free consecutive ports each, 10 apart."""
    for _ in range(200):
        base = random.randrange(20000, 60000)
        if all(_ports_free(base + 10 * i, width) for i in range(count)):
            return [base + 10 * i for i in range(count)]
    raise RuntimeError("no free ports for the members")


class Members(Directory):
    """A server cluster (docs/cluster.md): 'keyclone init --members' makes a
    directory with a member directory each (servers/NAME); one
    keyclone-server process per member; agents as in Cluster."""

    def __init__(self, names=("a", "b", "c"), server_options=(), init_options=()):
        self.root_dir = kc.tempdir("kc-members-")
        self.dir = os.path.join(self.root_dir, "dir")
        self.names = list(names)
        self.ports = dict(zip(self.names, free_base_ports(len(self.names))))
        members = ",".join(f"{n}=tcp://127.0.0.1:{p}" for n, p in self.ports.items())
        kc.keyclone("init", "--dir", self.dir, "--members", members, *init_options)
        self.server_options = list(server_options)
        self.procs = {}
        self.agents = []
        self.operator_names = ["op1"]


    def submit(self, name):
        return f"tcp://127.0.0.1:{self.ports[name] + 2}"

    def log(self, name):
        return os.path.join(self.root_dir, f"server-{name}.log")

    def log_text(self, name):
        with open(self.log(name), errors="replace") as f:
            return f.read()

    def start(self, name, *extra):
        args = [os.path.join(kc.BIN, "keyclone-server"), "--dir", os.path.join(self.dir, "servers", name)]
        self.procs[name] = kc.spawn(args + self.server_options + list(extra), log=self.log(name))
        kc.wait_for(lambda: self._up(name), 15, what=f"member {name} to answer")

    def start_all(self):
        for name in self.names:
            self.start(name)
        return self.leader()

    def _up(self, name):
        try:
            return self.status(name, timeout=500)
        except Exception:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"member {name} exited:\n" + self.log_text(name))
            return None

    def stop(self, name, sig=signal.SIGTERM):
        return kc.stop(self.procs[name], sig)

    def status(self, name, timeout=5000):
        result = kc.run([kc.KEYCLONE, "status", "--server", "--json", "--dir", self.dir, "--server",
                         self.submit(name), "--timeout", str(timeout)], expect=None)
        return json.loads(result[0])

    def running(self):
        return [n for n in self.names if n in self.procs and self.procs[n].poll() is None]

    def leader(self, among=None, timeout=20):
        """The member every running member (of among) names as leader."""
        among = among or self.running()
        seen = {}

        def agreed():
            for name in among:
                try:
                    seen[name] = self.status(name, timeout=1000)["cluster"]
                except Exception:
                    seen[name] = None
                    return None
            leaders = {s["leader"] for s in seen.values()}
            if len(leaders) == 1 and "" not in leaders and any(s["state"] == "leader" for s in seen.values()):
                return leaders.pop()
            return None
        return kc.wait_for(agreed, timeout, interval=0.1, what=f"one leader among {among}: {seen}")


    def wait_same(self, names=None, timeout=30):
        """Every member named (default: running) at one seq and chain; it."""
        names = names or self.running()

        def same():
            try:
                heads = {(s["seq"], s["chain"]) for s in (self.status(n) for n in names)}
            except (KeyError, ValueError):
                return None                 # a member busy or starting: {"error": ...}
            return heads.pop() if len(heads) == 1 else None
        return kc.wait_for(same, timeout, interval=0.1, what=f"members {names} at one seq")


def stranger_refused(server_key, endpoint):
    """A CURVE peer with a fresh key connects to endpoint (a member's Raft
    port) expecting server_key: libzmq must report HANDSHAKE_FAILED_AUTH 400."""
    from zmq.utils.monitor import recv_monitor_message
    ctx = zmq.Context()
    try:
        stranger = ctx.socket(zmq.PAIR)
        stranger.curve_publickey, stranger.curve_secretkey = zmq.curve_keypair()
        stranger.curve_serverkey = server_key.encode()
        stranger.linger = 0
        monitor = stranger.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        stranger.connect(endpoint)
        kc.check(monitor.poll(10000), "no authentication failure for a stranger's key")
        event = recv_monitor_message(monitor)
        kc.check(event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == 400,
                 f"libzmq reported {event}")
        stranger.disable_monitor()
        stranger.close()
    finally:
        ctx.destroy(linger=0)
