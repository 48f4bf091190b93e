#!/usr/bin/python3
"""kc_curve interop: the codec's command bodies in ZMTP 3.0 frames against stock
libzmq 4.3 CURVE sockets (C, in curve_interop check) and pyzmq clients (here,
against curve_interop serve): DEALER and REQ get in and exchange single and
multipart messages; a key the authorizer does not know is refused with ERROR
and libzmq reports HANDSHAKE_FAILED_AUTH 400; a client with the wrong server
key never completes a handshake. And docs/curvezmq.md's endpoint program,
built from the page, in both roles against a libzmq socket in C (curve_interop
peer) and against pyzmq, with heartbeats on both sides."""
import os
import queue
import re
import subprocess
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kc  # noqa: E402

PROGRAM = os.path.join(kc.TESTS, "curve_interop")
TIMEOUT_MS = 5000
_server = {}


def test_libzmq_scenarios():
    out, _ = kc.run([PROGRAM, "check"], timeout=120)
    lines = [l for l in out.splitlines() if l.startswith("ok   ")]
    kc.check("curve_interop: all scenarios passed" in out, out)
    for needle in ("codec client <-> libzmq ROUTER: multipart both ways",
                   "codec client <-> libzmq REP: handshake",
                   "zauth User-Id = our key",
                   "server sent ERROR '400'",
                   "codec server <-> libzmq DEALER: single and multipart",
                   "codec server <-> libzmq REQ: single and multipart",
                   "libzmq reports HANDSHAKE_FAILED_AUTH 400",
                   "wrong server key"):
        kc.check(any(needle in l for l in lines), f"missing scenario '{needle}':\n{out}")


def _start_server():
    public, secret = zmq.curve_keypair()
    port = kc.free_port()
    log = os.path.join(kc.tempdir("kc-curve-interop-"), "serve.log")
    out = open(log, "w")
    proc = subprocess.Popen([PROGRAM, "serve", str(port), public.decode()],
                            stdout=subprocess.PIPE, stderr=out, text=True,
                            start_new_session=True)
    kc._children.append(proc)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.strip()) for l in proc.stdout],
                     daemon=True).start()
    _server.update(proc=proc, port=port, lines=lines, public=public, secret=secret)
    first = _server_line("SERVER").split()
    kc.check(len(first) == 2, f"bad first line {first!r}")
    _server["key"] = first[1].encode()


def _server_line(*words):
    """The next line the server prints that holds all these words; lines
    from other connections (a client's stray reconnect) are skipped."""
    while True:
        try:
            line = _server["lines"].get(timeout=TIMEOUT_MS / 1000)
        except queue.Empty:
            raise AssertionError(f"the codec server printed no line with {words!r}")
        if all(w in line for w in words):
            return line


def _client(ctx, kind, public=None, secret=None, server_key=None):
    sock = ctx.socket(kind)
    sock.curve_serverkey = server_key or _server["key"]
    sock.curve_publickey = public or _server["public"]
    sock.curve_secretkey = secret or _server["secret"]
    sock.linger = 0
    sock.reconnect_ivl = -1         # a refused client must not come back
    sock.rcvtimeo = TIMEOUT_MS
    sock.sndtimeo = TIMEOUT_MS
    return sock


def test_pyzmq_dealer():
    if not _server:
        _start_server()
    ctx = zmq.Context()
    try:
        sock = _client(ctx, zmq.DEALER)
        sock.connect(f"tcp://127.0.0.1:{_server['port']}")
        sock.send(b"Hello")
        kc.check(sock.recv_multipart() == [b"echo:Hello"], "wrong single-part echo")
        sock.send_multipart([b"one", b"", b"three" * 1000])
        kc.check(sock.recv_multipart() == [b"echo:one", b"", b"echo:" + b"three" * 1000],
                 "wrong multipart echo")
        _server_line("authorised", "Socket-Type=DEALER")
        sock.close()
        _server_line("after 2 messages")
    finally:
        ctx.destroy(linger=0)


def test_pyzmq_req():
    if not _server:
        _start_server()
    ctx = zmq.Context()
    try:
        sock = _client(ctx, zmq.REQ)
        sock.connect(f"tcp://127.0.0.1:{_server['port']}")
        for request in ([b"Hello"], [b"a", b"b"]):
            sock.send_multipart(request)
            kc.check(sock.recv_multipart() == [b"echo:" + p for p in request],
                     f"wrong reply to {request!r}")
        _server_line("authorised", "Socket-Type=REQ")
        sock.close()
        _server_line("after 2 messages")
    finally:
        ctx.destroy(linger=0)


def test_pyzmq_denied():
    if not _server:
        _start_server()
    ctx = zmq.Context()
    try:
        public, secret = zmq.curve_keypair()
        sock = _client(ctx, zmq.DEALER, public, secret)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                          | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        monitor.rcvtimeo = TIMEOUT_MS
        sock.connect(f"tcp://127.0.0.1:{_server['port']}")
        from zmq.utils.monitor import recv_monitor_message
        event = recv_monitor_message(monitor)
        kc.check(event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == 400,
                 f"expected HANDSHAKE_FAILED_AUTH 400, got {event!r}")
        sock.disable_monitor()
        sock.close()
        _server_line("refused", "not authorised (400)")
    finally:
        ctx.destroy(linger=0)


def test_pyzmq_wrong_server_key():
    if not _server:
        _start_server()
    ctx = zmq.Context()
    try:
        other, _ = zmq.curve_keypair()
        sock = _client(ctx, zmq.DEALER, server_key=other)
        sock.connect(f"tcp://127.0.0.1:{_server['port']}")
        _server_line("refused", "signature box does not open")
        sock.close()
        # The server carries on: a good client still gets in afterwards
        good = _client(ctx, zmq.DEALER)
        good.connect(f"tcp://127.0.0.1:{_server['port']}")
        good.send(b"still there?")
        reply = good.recv_multipart()
        kc.check(reply == [b"echo:still there?"], f"wrong reply {reply!r}")
        good.close()
        _server_line("after 1 messages")
    finally:
        ctx.destroy(linger=0)


#   --- docs/curvezmq.md section 10.1: the endpoint program -------------------

def _endpoint_program():
    """Builds the endpoint program exactly as docs/curvezmq.md prints it,
    against this build's library and headers."""
    import test_docs
    _, names, errors = test_docs.all_blocks()
    kc.check("curvezmq/endpoint.c" in names, f"docs/curvezmq.md has no endpoint.c block ({errors})")
    work = kc.tempdir("kc-endpoint-")
    source = os.path.join(work, "endpoint.c")
    with open(source, "w") as f:
        f.write(names["curvezmq/endpoint.c"].text)
    program = os.path.join(work, "endpoint")
    lib = os.path.join(kc.BUILD, "lib")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libczmq", "libzmq", "libsodium"],
                           capture_output=True, text=True, check=True).stdout.split()
    #   Under make check-asan the library is built with ASan+UBSan (which
    #   sets ASAN_OPTIONS): so is the program, as that build's keyclone.pc says
    if "ASAN_OPTIONS" in os.environ:
        flags += ["-fsanitize=address,undefined", "-static-libubsan"]
    build = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", source, "-o", program,
                            "-I", os.path.join(kc.ROOT, "lib"), "-L", lib, "-lkeyclone",
                            f"-Wl,-rpath,{lib}"] + flags, capture_output=True, text=True)
    kc.check(build.returncode == 0, f"endpoint.c does not build:\n{build.stderr}")
    return program


def _heartbeats_flowed(out):
    """The endpoint's last line: both kinds of PING went both ways, answered."""
    last = out.strip().splitlines()[-1] if out.strip() else ""
    numbers = [int(n) for n in re.findall(r"\d+", last)]
    kc.check(last.startswith("done;") and len(numbers) == 2 and numbers[0] >= 2 and numbers[1] >= 3,
             f"the endpoint's heartbeats did not flow both ways (want >= 2 PONGs received and "
             f">= 3 PINGs answered):\n{out}")


def _endpoint(args, **kwargs):
    proc = subprocess.Popen([_endpoint.program] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, **kwargs)
    kc._children.append(proc)
    return proc


def _first_key(proc):
    line = proc.stdout.readline().split()
    kc.check(len(line) == 2 and line[0] == "key", f"no key line from {proc.args}: {line!r}")
    return line[1]


def _heartbeating(sock):
    """pyzmq heartbeats like the C peer's (100 ms, answer within 300 ms, TTL
    1 s), read back."""
    sock.heartbeat_ivl, sock.heartbeat_timeout, sock.heartbeat_ttl = 100, 300, 1000
    kc.check((sock.heartbeat_ivl, sock.heartbeat_timeout, sock.heartbeat_ttl) == (100, 300, 1000),
             "pyzmq heartbeat options did not take")


def _dealer_to(ctx, server, port, public, secret, events=zmq.EVENT_ALL):
    """A heartbeating pyzmq DEALER with this key pair, connected to the
    endpoint server (libzmq retries until it listens), and its monitor."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.curve_publickey, dealer.curve_secretkey = public, secret
    dealer.curve_serverkey = _first_key(server).encode()
    dealer.linger, dealer.rcvtimeo = 0, 10000
    _heartbeating(dealer)
    monitor = dealer.get_monitor_socket(events)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return dealer, monitor


def _disconnections(monitor):
    from zmq.utils.monitor import recv_monitor_message
    events = []
    while monitor.poll(0):
        events.append(recv_monitor_message(monitor)["event"])
    return sum(1 for e in events if e == zmq.EVENT_DISCONNECTED)


def test_the_endpoint_program_with_libzmq():
    """The docs' program in C against libzmq in C: our client vs a ROUTER,
    our server vs a DEALER; a second of quiet between two messages, crossed
    only by PINGs that libzmq drops the connection for if unanswered."""
    _endpoint.program = _endpoint_program()
    #   Our client, libzmq's ROUTER
    port = kc.free_port()
    peer = subprocess.Popen([PROGRAM, "peer", "ROUTER", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    kc._children.append(peer)
    client = _endpoint(["connect", str(port), _first_key(peer)])
    out, _ = client.communicate(timeout=60)
    peer_out, _ = peer.communicate(timeout=60)
    kc.check(client.returncode == 0 and "reply: echo:hello\nreply: echo:bye\n" in out,
             f"endpoint connect vs libzmq ROUTER:\n{out}\n--- libzmq:\n{peer_out}")
    kc.check(peer.returncode == 0 and "ROUTER got bye" in peer_out, f"libzmq ROUTER:\n{peer_out}")
    _heartbeats_flowed(out)
    #   Our server, libzmq's DEALER
    port = kc.free_port()
    peer = subprocess.Popen([PROGRAM, "peer", "DEALER", str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    kc._children.append(peer)
    server = _endpoint(["serve", str(port), _first_key(peer)])
    peer.stdin.write(_first_key(server) + "\n")
    peer.stdin.flush()
    peer_out, _ = peer.communicate(timeout=60)
    out, _ = server.communicate(timeout=60)
    kc.check(peer.returncode == 0 and "DEALER got bye" in peer_out,
             f"libzmq DEALER vs endpoint serve:\n{peer_out}\n--- endpoint:\n{out}")
    kc.check("client-1: hello\nclient-1: bye\n" in out, f"endpoint serve:\n{out}")
    _heartbeats_flowed(out)


def test_the_endpoint_program_with_pyzmq():
    """The same program against pyzmq's ROUTER and DEALER, with heartbeats;
    a key the program does not allow is refused with ERROR 400."""
    ctx = zmq.Context()
    try:
        #   Our client, pyzmq's ROUTER
        public, secret = zmq.curve_keypair()
        router = ctx.socket(zmq.ROUTER)
        router.curve_server, router.curve_publickey, router.curve_secretkey = True, public, secret
        router.linger, router.rcvtimeo = 0, 10000
        _heartbeating(router)
        monitor = router.get_monitor_socket()
        port = router.bind_to_random_port("tcp://127.0.0.1")
        client = _endpoint(["connect", str(port), public.decode()])
        kc.check(len(_first_key(client)) == 40, "no key from the endpoint")
        for word in (b"hello", b"bye"):
            identity, body = router.recv_multipart()
            kc.check(body == word, f"pyzmq ROUTER got {body!r}, not {word!r}")
            kc.check(_disconnections(monitor) == 0, "pyzmq dropped the endpoint before its last message")
            router.send_multipart([identity, b"echo:" + body])
        out, _ = client.communicate(timeout=30)
        kc.check(client.returncode == 0 and "reply: echo:bye" in out, f"endpoint connect vs pyzmq:\n{out}")
        _heartbeats_flowed(out)
        router.disable_monitor()
        router.close()

        #   Our server, pyzmq's DEALER
        public, secret = zmq.curve_keypair()
        port = kc.free_port()
        server = _endpoint(["serve", str(port), public.decode()])
        dealer, monitor = _dealer_to(ctx, server, port, public, secret)
        dealer.send(b"hello")
        kc.check(dealer.recv() == b"hello", "no echo from the endpoint")
        time.sleep(1.0)                     # only heartbeats cross
        kc.check(_disconnections(monitor) == 0, "pyzmq dropped the endpoint during the quiet second")
        dealer.send(b"bye")
        kc.check(dealer.recv() == b"bye", "no second echo from the endpoint")
        dealer.disable_monitor()
        dealer.close()
        out, _ = server.communicate(timeout=30)
        kc.check(server.returncode == 0 and "client-1: bye" in out, f"endpoint serve vs pyzmq:\n{out}")
        _heartbeats_flowed(out)

        #   A client key the program does not allow: ERROR 400, seen by libzmq
        other_public, other_secret = zmq.curve_keypair()
        port = kc.free_port()
        server = _endpoint(["serve", str(port), public.decode()])
        dealer, monitor = _dealer_to(ctx, server, port, other_public, other_secret,
                                     zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        from zmq.utils.monitor import recv_monitor_message
        kc.check(monitor.poll(10000), "libzmq saw no authentication failure")
        event = recv_monitor_message(monitor)
        kc.check(event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == 400,
                 f"libzmq reported {event}")
        out, _ = server.communicate(timeout=30)
        kc.check(server.returncode == 1 and "400" in out.splitlines()[-1], f"endpoint serve, denied:\n{out}")
        dealer.disable_monitor()
        dealer.close()
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    kc.main([test_libzmq_scenarios, test_pyzmq_dealer, test_pyzmq_req, test_pyzmq_denied,
             test_pyzmq_wrong_server_key, test_the_endpoint_program_with_libzmq,
             test_the_endpoint_program_with_pyzmq])
