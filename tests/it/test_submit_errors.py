#!/usr/bin/python3
"""Bad submissions: forged signatures, below threshold, a signer not in the
root, lower versions, un-revoking, another directory, expired records,
oversized and malformed frames. Each is refused with its reason; the server
keeps running and its store is unchanged. Resubmitting an accepted batch
returns its original sequence."""
import hashlib
import json
import os
import sqlite3
import struct

import zmq
import zmq.utils.z85

import kc
from cluster import Cluster, submit_raw

# register needs 2 of 3, revoke 1
C = Cluster(operators=3, threshold=2, names=["alice", "bob", "carol"],
            init_options=["--threshold-revoke", "1"])
T = C.root_dir


def store_digest():
    db = sqlite3.connect(f"file:{os.path.join(C.dir, 'server', 'store.db')}?mode=ro", uri=True)
    digest = hashlib.sha256()
    for table, order in (("batches", "seq"), ("keys", "key")):
        for row in db.execute(f"SELECT * FROM {table} ORDER BY {order}"):
            digest.update(repr(row).encode())
    db.close()
    return digest.hexdigest()


def sign(path, *specs, operators=("alice", "bob"), revoke=False):
    args = ["sign", "--out", path]
    for op in operators:
        args += ["--operator", op]
    for spec in specs:
        args += ["--revoke" if revoke else "--register", spec]
    C.cli(*args)
    return open(path, "rb").read()


def refused(data, reason):
    """Submits raw batch bytes; asserts an ERROR naming reason, no change."""
    before = store_digest()
    reply = submit_raw(C, [b"SUBMIT", data])
    kc.check(reply is not None and reply[0] == b"ERROR", f"expected ERROR, got {reply}")
    kc.check(reason in reply[1].decode(), f"'{reason}' not in '{reply[1].decode()}'")
    kc.check(store_digest() == before, "the store changed")
    kc.check(C.server.poll() is None, "the server died")


KEY = zmq.curve_keypair()[0].decode()


def test_start_and_register():
    C.start_server()
    good = sign(os.path.join(T, "good.kcb"), f"web-1={KEY},tag=role=web")
    reply = submit_raw(C, [b"SUBMIT", good])
    kc.check(reply[0] == b"OK" and reply[3] == b"accepted", reply)
    seq = struct.unpack(">Q", reply[1])[0]
    # the same batch again: its original sequence, nothing new
    before = store_digest()
    reply = submit_raw(C, [b"SUBMIT", good])
    kc.check(reply[0] == b"OK" and reply[3] == b"duplicate" and struct.unpack(">Q", reply[1])[0] == seq,
             reply)
    out, _ = C.cli("submit", os.path.join(T, "good.kcb"))
    kc.check(f"already accepted at seq {seq}" in out, out)
    kc.check(store_digest() == before, "a duplicate changed the store")


def test_forged_signature():
    data = bytearray(sign(os.path.join(T, "f.kcb"), f"web-2={zmq.curve_keypair()[0].decode()}"))
    data[-1] ^= 1
    refused(bytes(data), "bad signature by operator")


def test_altered_record():
    data = bytearray(sign(os.path.join(T, "a.kcb"), f"web-3={zmq.curve_keypair()[0].decode()}"))
    data[49 + 70] ^= 1                       # inside the record's not-before
    refused(bytes(data), "bad signature")


def test_below_threshold():
    data = sign(os.path.join(T, "b.kcb"), f"web-4={zmq.curve_keypair()[0].decode()}",
                operators=["alice"])
    refused(data, "signature threshold 2 not met (1 valid)")


def add_signature(data, seed, signatures):
    """Appends an Ed25519 signature by the key of seed to a batch that holds
    `signatures` signatures, keeping the list sorted (libsodium through
    ctypes). The count is given, not guessed from the tail: a signature
    ending in a zero byte looks like an empty list."""
    import ctypes
    sodium = ctypes.CDLL("libsodium.so.23")
    public, secret = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
    sodium.crypto_sign_seed_keypair(public, secret, seed)
    # the body ends where the signature list starts: count byte + 96 * count
    at = len(data) - 1 - 96 * signatures
    assert data[at] == signatures, "not a batch with that many signatures"
    body, entries = data[:at], [data[at + 1 + 96 * i: at + 97 + 96 * i] for i in range(signatures)]
    digest = hashlib.blake2b(bytes(body), digest_size=32).digest()
    message = b"keyclone batch v1\x00" + digest
    signature = ctypes.create_string_buffer(64)
    sodium.crypto_sign_detached(signature, None, message, ctypes.c_ulonglong(len(message)), secret)
    entries.append(public.raw + signature.raw)
    entries.sort(key=lambda e: e[:32])
    return bytes(body) + bytes([len(entries)]) + b"".join(entries)


def test_signer_not_in_root():
    other = os.path.join(T, "other")
    kc.keyclone("init", "--dir", other)
    path = os.path.join(T, "s.kcb")
    C.cli("sign", "--operator", "alice", "--register", f"web-5={zmq.curve_keypair()[0].decode()}",
          "--out", path)
    # the CLI will not add a stranger's signature...
    kc.keyclone("cosign", path, "--dir", other, "--operator", "op1", "--root", os.path.join(C.dir, "root"),
                expect=1)
    # ...so add one by hand: alice + a key that is not an operator of this root
    text = open(os.path.join(other, "operators", "op1_secret")).read()
    seed = zmq.utils.z85.decode(text.split('secret-key = "')[1][:40])
    refused(add_signature(open(path, "rb").read(), seed, 1), "which is not an operator in root v1")


def test_wrong_directory():
    """A batch for another directory, signed by this root's own operators
    (alice and bob, enough for the threshold): only the directory is wrong,
    and that is what refuses it."""
    other = os.path.join(T, "other")
    path = os.path.join(T, "w.kcb")
    kc.run([os.path.join(kc.TESTS, "kc_forge"), os.path.join(other, "root"), path, "web-6",
            zmq.curve_keypair()[0].decode(), C.operator(0), C.operator(1)])
    refused(open(path, "rb").read(), "wrong directory")


def test_lower_version():
    data = sign(os.path.join(T, "v.kcb"), f"web-1={KEY},version=5")
    refused(data, "is not above the stored version")


def test_unrevoke():
    revoke = sign(os.path.join(T, "r.kcb"), f"{KEY},reason=compromised", operators=["carol"],
                  revoke=True)
    reply = submit_raw(C, [b"SUBMIT", revoke])
    kc.check(reply[0] == b"OK", reply)
    data = sign(os.path.join(T, "u.kcb"), f"web-1={KEY}")
    refused(data, "revocation is terminal")


def test_expired_record():
    path = os.path.join(T, "e.kcb")
    # not-after in the past: craft it through the version/expiry options
    C.cli("sign", "--operator", "alice", "--operator", "bob", "--register",
          f"old={zmq.curve_keypair()[0].decode()},expires=1", "--out", path)
    import time
    time.sleep(1.2)
    refused(open(path, "rb").read(), "expired at")


def test_malformed_frames():
    cases = [
        ([b"SUBMIT"], "frames"),
        ([b"SUBMIT", b"a", b"b"], "frames"),
        ([b"SUBMIT", b""], "SUBMIT batch is 0 bytes"),
        ([b"SUBMIT", b"KCBT garbage"], "unknown batch format 32"),
        ([b"SUBMIT", b"KCBT\x01" + b"\x00" * 20], "truncated batch header"),
        ([b"SUBMIT", b"\x00" * 100], "bad magic"),
        ([b"DELETE", b"everything"], "unexpected command 'DELETE'"),
        ([b"\xff\xfe"], "unexpected command"),
        ([b"QUERY", b"key", b"short", b"\x00\x00\x00\x01"], "wrong size"),
        ([b"QUERY", b"drop", b"", b"\x00\x00\x00\x01"], "key, name or list"),
    ]
    for frames, reason in cases:
        before = store_digest()
        reply = submit_raw(C, frames)
        kc.check(reply is not None and reply[0] == b"ERROR", f"{frames!r}: {reply}")
        kc.check(reason in reply[1].decode(), f"{frames!r}: '{reason}' not in {reply[1]!r}")
        kc.check(store_digest() == before, "the store changed")
    # a frame bigger than any batch may be is cut off by the transport
    before = store_digest()
    reply = submit_raw(C, [b"SUBMIT", b"K" * (33 * 1024 * 1024)], timeout=3000)
    kc.check(reply is None, "an oversized frame was answered")
    kc.check(store_digest() == before and C.server.poll() is None, "oversized frame hurt the server")


def test_wrong_server_key_and_plain_clients():
    # a client that pins another server key never gets an answer
    reply = submit_raw(C, [b"STATUS"], timeout=1000, server_key=zmq.curve_keypair()[0].decode())
    kc.check(reply is None, reply)
    # a client without CURVE cannot talk to the server at all
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(C.submit_endpoint)
    s.send_multipart([b"STATUS"])
    kc.check(not s.poll(1000), "a NULL-security client was answered")
    s.close()


def test_server_still_serves():
    status = C.server_status()
    kc.check(status["seq"] == 2 and status["keys"] == 1 and status["revoked"] == 1, status)
    kc.check(status["rejected"] >= 8, status)
    log = C.server_log_text()
    kc.check("rejected batch from" in log and "malformed submission from" in log, log[-2000:])


kc.main([test_start_and_register, test_forged_signature, test_altered_record,
         test_below_threshold, test_signer_not_in_root, test_wrong_directory, test_lower_version,
         test_unrevoke, test_expired_record, test_malformed_frames,
         test_wrong_server_key_and_plain_clients, test_server_still_serves])
