#!/usr/bin/python3
"""kc_curve interop: the codec's command bodies in ZMTP 3.0 frames against stock
libzmq 4.3 CURVE sockets (C, in curve_interop check) and pyzmq clients (here,
against curve_interop serve): DEALER and REQ get in and exchange single and
multipart messages; a key the authorizer does not know is refused with ERROR
and libzmq reports HANDSHAKE_FAILED_AUTH 400; a client with the wrong server
key never completes a handshake."""
import os
import queue
import subprocess
import sys
import threading

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


if __name__ == "__main__":
    kc.main([test_libzmq_scenarios, test_pyzmq_dealer, test_pyzmq_req, test_pyzmq_denied,
             test_pyzmq_wrong_server_key])
