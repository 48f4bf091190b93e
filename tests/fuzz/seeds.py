#!/usr/bin/python3
"""Writes the seed corpora of the record, batch, root, zpl and z85 fuzz
targets from the frozen vectors and a few hand-made edge cases. Run from the
project root after changing a vector set; existing seeds are kept."""
import os
import re

V = "tests/vectors"
C = "tests/fuzz/corpus"


def vector(name):
    text = open(os.path.join(V, name)).read()
    return bytes.fromhex("".join(l for l in text.splitlines() if not l.startswith("#")))


def seed(target, name, data):
    path = os.path.join(C, target, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


for name in ("record-active", "record-revoked"):
    data = vector(name + ".hex")
    seed("record", name, data)
    seed("record", name + "-truncated", data[:-1])
    seed("record", name + "-extended", data + b"\0")
for name in ("batch-1of1", "batch-2of3"):
    data = vector(name + ".hex")
    seed("batch", name, data)
    seed("batch", name + "-truncated", data[:-7])
    seed("batch", name + "-nosig", data[:-97] + b"\0")
for name in ("root-1of1", "root-2of3", "root-2of3-v2"):
    data = vector(name + ".hex")
    seed("root", name, data)
    seed("root", name + "-truncated", data[: len(data) // 2])
cert = ('#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\n    name = "alice"\n'
        'curve\n    public-key = ".5cMJTR38AuEFijBeew0lX2x^ySJ]hI60Vs@qdKO"\n'
        '    secret-key = "Mqj(y(Wn#Uozk@axkWcUGO]>1lXQhx)D>ap>Zleq"\n')
seed("zpl", "cert-secret", cert)
seed("zpl", "operator", 'metadata\n    name = "op1"\n    type = "keyclone-operator"\n'
     'ed25519\n    public-key = \'Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\'\n')
seed("zpl", "nested", "a\n    b\n        c = 1   # comment\n    d = x\ne\r\n")
seed("zpl", "bad-indent", "a\n   b = 1\n")
seed("zpl", "unterminated", 'a = "open\n')
seed("z85", "hello", "HelloWorld")
seed("z85", "key", "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID")
seed("z85", "max", "%nSc0")
seed("z85", "overflow", "%nSc1")
seed("z85", "bad", "Hello World")


# --- protocol messages: frames as (u16 length, bytes) ------------------------
import struct


def frames(*parts):
    return b"".join(struct.pack(">H", len(p)) + p for p in parts)


def u64(v):
    return struct.pack(">Q", v)


def u32(v):
    return struct.pack(">I", v)


DIR = bytes(range(32))
CHAIN = bytes(32 - i for i in range(32))
HEAD = b"KCHD\x01" + DIR + u64(7) + CHAIN + u64(1000) + u64(6000) + b"\x55" * 64
BATCH = vector("batch-1of1.hex")
BATCH2 = vector("batch-2of3.hex")
RECORD = vector("record-active.hex")
for name in ("snapshot_server", "snapshot_agent", "updates", "submit_server", "submit_client"):
    os.makedirs(os.path.join(C, "proto_" + name), exist_ok=True)
seed("proto_snapshot_server", "sync", frames(b"SYNC", DIR, u64(0), u32(8)))
seed("proto_snapshot_server", "sync-credit-0", frames(b"SYNC", DIR, u64(5), u32(0)))
seed("proto_snapshot_server", "credit", frames(b"CREDIT", u32(1)))
seed("proto_snapshot_server", "ack", frames(b"ACK", u64(9), CHAIN))
seed("proto_snapshot_server", "ack-short", frames(b"ACK", u64(9), CHAIN[:31]))
seed("proto_snapshot_agent", "batches", frames(b"BATCHES", u64(1) + CHAIN, BATCH, u64(2) + CHAIN, BATCH2))
seed("proto_snapshot_agent", "batches-gap", frames(b"BATCHES", u64(1) + CHAIN, BATCH, u64(3) + CHAIN, BATCH))
seed("proto_snapshot_agent", "end", frames(b"END", u64(1), u64(1), HEAD))
seed("proto_snapshot_agent", "error", frames(b"ERROR", b"SYNC for another directory"))
seed("proto_updates", "update", frames(b"UPDATE", u64(4) + CHAIN, BATCH))
seed("proto_updates", "head", frames(b"HEAD", HEAD))
seed("proto_updates", "head-short", frames(b"HEAD", HEAD[:100]))
seed("proto_submit_server", "submit", frames(b"SUBMIT", BATCH))
seed("proto_submit_server", "query-key", frames(b"QUERY", b"key", DIR, u32(10)))
seed("proto_submit_server", "query-name", frames(b"QUERY", b"name", b"web-1", u32(10)))
seed("proto_submit_server", "query-list", frames(b"QUERY", b"list", b"", u32(10000)))
seed("proto_submit_server", "status", frames(b"STATUS"))
AUTH = DIR + u64(1800000000000) + b"\x66" * 64        # operator key, time, signature (kc_access.h)
seed("proto_submit_server", "status-auth", frames(b"STATUS", AUTH))
seed("proto_submit_server", "query-list-auth", frames(b"QUERY", b"list", b"", u32(100), AUTH))
seed("proto_submit_server", "status-auth-short", frames(b"STATUS", AUTH[:103]))
seed("proto_submit_client", "ok", frames(b"OK", u64(3), CHAIN, b"accepted"))
seed("proto_submit_client", "records", frames(b"RECORDS", DIR, u64(2), RECORD, u64(3), RECORD))
seed("proto_submit_client", "status", frames(b"STATUS", b'{"seq": 1}', b"server: seq 1\n"))
seed("proto_submit_client", "error", frames(b"ERROR", b"signature threshold 2 not met (1 valid)"))
# --- root changes in the log (issue 11) -----------------------------------------
ROOT2 = vector("root2-cluster-v3.hex")
seed("root", "root2-1of1", vector("root2-1of1.hex"))
seed("root", "root2-cluster-v3", ROOT2)
seed("root", "root2-cluster-v3-truncated", ROOT2[: len(ROOT2) // 2])
seed("proto_updates", "update-root", frames(b"UPDATE", u64(4) + CHAIN, ROOT2))
seed("proto_snapshot_agent", "batches-root", frames(b"BATCHES", u64(1) + CHAIN, BATCH, u64(2) + CHAIN, ROOT2))
seed("proto_submit_server", "submit-root", frames(b"SUBMIT", ROOT2))
seed("proto_submit_server", "roots", frames(b"ROOTS"))
seed("proto_submit_server", "log", frames(b"LOG", u64(0), u32(1000)))
seed("proto_submit_server", "log-auth", frames(b"LOG", u64(5), u32(1), AUTH))
seed("proto_submit_server", "log-limit-0", frames(b"LOG", u64(5), u32(0)))
seed("proto_submit_client", "roots", frames(b"ROOTS", u64(4), ROOT2))
seed("proto_submit_client", "roots-odd", frames(b"ROOTS", u64(4)))
seed("proto_submit_client", "log", frames(b"LOG", u64(3) + u64(1800000000000) + DIR, BATCH,
                                         u64(4) + u64(1800000000001) + bytes(32), ROOT2))
seed("proto_submit_client", "log-short-header", frames(b"LOG", u64(3) + u64(1), BATCH))
os.makedirs(os.path.join(C, "head"), exist_ok=True)
seed("head", "head", HEAD)
seed("head", "head-bad-magic", b"KCHX" + HEAD[4:])
seed("head", "head-short", HEAD[:156])
# --- cache buckets: u16 bucket number, then the bucket bytes ---------------
os.makedirs(os.path.join(C, "bucket"), exist_ok=True)
entry = struct.pack(">H", 8 + len(RECORD)) + u64(5) + RECORD
bucket = RECORD[33] << 8 | RECORD[34]
seed("bucket", "one-entry", struct.pack(">H", bucket) + entry)
seed("bucket", "wrong-bucket", struct.pack(">H", bucket ^ 1) + entry)
seed("bucket", "truncated", struct.pack(">H", bucket) + entry[:-3])
seed("bucket", "names", struct.pack(">H", 0) + b"\x03web" + DIR + b"\x02db" + CHAIN)
# --- ZAP requests --------------------------------------------------------------
os.makedirs(os.path.join(C, "zap"), exist_ok=True)
seed("zap", "curve", frames(b"1.0", b"1", b"db", b"127.0.0.1", b"", b"CURVE", DIR))
seed("zap", "curve-role", frames(b"1.0", b"1", b"role=db", b"::1", b"id", b"CURVE", CHAIN))
seed("zap", "plain", frames(b"1.0", b"1", b"", b"127.0.0.1", b"", b"PLAIN", b"user", b"pass"))
seed("zap", "version", frames(b"2.0", b"1", b"db", b"127.0.0.1", b"", b"CURVE", DIR))
seed("zap", "short", frames(b"1.0", b"1", b"db"))
# --- entry headers with the audit metadata (accepted, submitter) ------------------
META = u64(1800000000000) + DIR
seed("proto_updates", "update-meta", frames(b"UPDATE", u64(4) + CHAIN + META, BATCH))
seed("proto_updates", "update-meta-short", frames(b"UPDATE", u64(4) + CHAIN + META[:39], BATCH))
seed("proto_snapshot_agent", "batches-meta", frames(b"BATCHES", u64(1) + CHAIN + META, BATCH,
                                                    u64(2) + CHAIN + u64(0) + bytes(32), ROOT2))
# --- enrolment (issue 12) ---------------------------------------------------------
os.makedirs(os.path.join(C, "enrolment"), exist_ok=True)


def str8(text):
    return bytes([len(text)]) + text


def enrolment(state=1, seq=0, name=b"web-1", tags=(b"dc=eu", b"role=web"), source=b"127.0.0.1", reason=b"",
              replaces=bytes(32), overlap=0):
    return (DIR + bytes([state]) + u64(1800000000000) + u64(1800086400000) + u64(seq) + replaces + u64(overlap)
            + str8(name)
            + bytes([len(tags)]) + b"".join(str8(t) for t in tags) + str8(source) + str8(reason))


PENDING = enrolment()
seed("enrolment", "pending", PENDING)
seed("enrolment", "rejected", enrolment(state=2, reason=b"unknown host"))
seed("enrolment", "registered", enrolment(state=3, seq=7, tags=()))
seed("enrolment", "truncated", PENDING[:-3])
seed("enrolment", "tags-unsorted", enrolment(tags=(b"role=web", b"dc=eu")))
seed("enrolment", "state-mismatch", enrolment(state=3, seq=0))
seed("enrolment", "rotation", enrolment(replaces=CHAIN, overlap=3600))
seed("enrolment", "overlap-without-rotation", enrolment(overlap=3600))
seed("proto_submit_server", "rotate", frames(b"ROTATE", DIR, u64(3600)))
seed("proto_submit_server", "rotate-short", frames(b"ROTATE", DIR[:31], u64(3600)))
seed("proto_submit_server", "enrol", frames(b"ENROL", b"web-1", b"role=web", b"dc=eu"))
seed("proto_submit_server", "enrol-bad-tag", frames(b"ENROL", b"web-1", b"role web"))
seed("proto_submit_server", "pending", frames(b"PENDING"))
seed("proto_submit_server", "pending-auth", frames(b"PENDING", AUTH))
seed("proto_submit_server", "reject", frames(b"REJECT", DIR, b"unknown host", AUTH))
seed("proto_submit_server", "reject-noauth", frames(b"REJECT", DIR, b"unknown host"))
seed("proto_submit_client", "enrolment", frames(b"ENROLMENT", PENDING))
seed("proto_submit_client", "pending", frames(b"PENDING", PENDING, enrolment(state=2, reason=b"no")))
seed("proto_submit_client", "pending-empty", frames(b"PENDING"))
seed("proto_submit_client", "pending-bad", frames(b"PENDING", PENDING[:-1]))
# --- enrolment grants (issue 12) ---------------------------------------------------
os.makedirs(os.path.join(C, "grant"), exist_ok=True)
for name in ("grant-1of1", "grant-revoked", "grant-use"):
    data = vector(name + ".hex")
    seed("grant", name, data)
    seed("grant", name + "-truncated", data[:-1])
    seed("grant", name + "-extended", data + b"\0")
seed("proto_submit_server", "submit-grant", frames(b"SUBMIT", vector("grant-1of1.hex")))
seed("proto_submit_server", "submit-grant-use", frames(b"SUBMIT", vector("grant-use.hex")))
seed("proto_updates", "update-grant-use", frames(b"UPDATE", u64(4) + CHAIN, vector("grant-use.hex")))
seed("proto_submit_server", "metrics", frames(b"METRICS"))
seed("proto_submit_server", "metrics-auth", frames(b"METRICS", AUTH))
# --- ZMTP greeting and frames (kc_zmtp): byte 0 picks greeting (0) or frames -------
os.makedirs(os.path.join(C, "zmtp"), exist_ok=True)
GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x01" + b"CURVE".ljust(20, b"\0") + b"\0" + b"\0" * 31
seed("zmtp", "greeting-libzmq", b"\0" + GREETING)
seed("zmtp", "greeting-server", b"\0" + GREETING[:32] + b"\x01" + GREETING[33:])
seed("zmtp", "greeting-zmtp2", b"\0" + GREETING[:10] + b"\x02\x00" + GREETING[12:])
seed("zmtp", "greeting-null", b"\0" + GREETING[:12] + b"NULL".ljust(20, b"\0") + GREETING[32:])
seed("zmtp", "greeting-short", b"\0" + GREETING[:11])
HELLO = b"\x05HELLO" + b"\x01\x00" + b"\0" * 72 + b"\x11" * 120
seed("zmtp", "frames-handshake", b"\1" + b"\x04" + bytes([len(HELLO)]) + HELLO)
PING = b"\x04PING\x00\x64ctx"
seed("zmtp", "frames-ping", b"\1" + b"\x04" + bytes([len(PING)]) + PING)
seed("zmtp", "frames-long", b"\1" + b"\x06" + (300).to_bytes(8, "big") + b"\x07MESSAGE" + b"\x22" * 292)
seed("zmtp", "frames-multipart", b"\1" + b"\x01\x03abc" + b"\x00\x00" + b"\x02" + (2).to_bytes(8, "big") + b"ok")
seed("zmtp", "frames-reserved", b"\1" + b"\x08\x00")
seed("zmtp", "frames-huge", b"\1" + b"\x02" + b"\xff" * 8)
seed("zmtp", "frames-truncated", b"\1" + b"\x00\x05ab")
# --- a kc_zmtp_t connection: byte 0 picks a fresh server (0) or records on a pair (1) --
os.makedirs(os.path.join(C, "zmtp_link"), exist_ok=True)
seed("zmtp_link", "server-greeting-hello", b"\0" + GREETING + b"\x04" + bytes([len(HELLO)]) + HELLO)
seed("zmtp_link", "server-greeting-only", b"\0" + GREETING)
seed("zmtp_link", "server-not-zmtp", b"\0GET / HTTP/1.1\r\n\r\n")
seed("zmtp_link", "server-huge-frame", b"\0" + GREETING + b"\x06" + b"\xff" * 8)


def record(op, data=b""):
    return bytes([op, len(data)]) + data


PING_TTL = b"\x04PING\x00\x0a" + b"context-16-bytes"
seed("zmtp_link", "pair-parts", b"\1" + record(2 << 1 | 16, b"first") + record(2 << 1, b"second")
     + record(4 << 1, b"\x03") + record(2 << 1 | 1, b"back") + record(4 << 1 | 1, b"\xff"))
seed("zmtp_link", "pair-ping-commands", b"\1" + record(1 << 1, PING_TTL) + record(1 << 1 | 1, b"\x04PONG")
     + record(1 << 1, b"\x09SUBSCRIBE") + record(1 << 1, b"\x04PING\x00") + record(4 << 1 | 1, b"\x10"))
seed("zmtp_link", "pair-heartbeats", b"\1" + (record(3 << 1, b"\x0a") + record(4 << 1, b"\xff")
     + record(4 << 1 | 1, b"\xff")) * 5 + record(3 << 1, b"\xff") + record(3 << 1, b"\xff"))
seed("zmtp_link", "pair-ttl-expires", b"\1" + record(1 << 1, PING_TTL) + record(3 << 1, b"\x0b"))
seed("zmtp_link", "pair-raw-garbage", b"\1" + record(0, b"\x00\x05hello") + record(2 << 1, b"x"))
seed("zmtp_link", "pair-ping-oversized", b"\1" + record(1 << 1, b"\x04PING\x00\x01" + b"c" * 17))

# The cluster's Raft entry (kc_group, docs/cluster.md section 3)
import struct


def group(base, items, time_ms=1700000000123, chain=b"\xc1" * 32):
    out = b"KCR1" + struct.pack(">Q", base) + chain + struct.pack(">QH", time_ms, len(items))
    for i, (submitter, data) in enumerate(items):
        out += struct.pack(">Q", base + 1 + i) + b"\xc2" * 32
        out += (b"\x01" + submitter if submitter else b"\x00") + struct.pack(">I", len(data)) + data
    return out


os.makedirs(os.path.join(C, "group"), exist_ok=True)
batch = vector("batch-1of1.hex")
seed("group", "one-batch", group(0, [(b"\x5b" * 32, batch)]))
seed("group", "two-entries", group(41, [(None, batch), (b"\x01" * 32, vector("root-2of3-v2.hex"))]))
seed("group", "truncated", group(41, [(None, batch)])[:-3])
seed("group", "seq-gap", group(41, [(None, b"x")]).replace(struct.pack(">Q", 42), struct.pack(">Q", 44), 1))
seed("group", "empty", group(7, []))
# --- witness cosignatures (issue 15) ---------------------------------------------
COSIG = b"KCWS\x01" + b"\x07" * 32 + DIR + u64(1) + bytes(32) + u64(999000) + b"\x77" * 64
os.makedirs(os.path.join(C, "cosig"), exist_ok=True)
seed("cosig", "cosig", COSIG)
seed("cosig", "cosig-bad-magic", b"KCWX" + COSIG[4:])
seed("cosig", "cosig-short", COSIG[:180])
seed("cosig", "cosig-format-2", COSIG[:4] + b"\x02" + COSIG[5:])
seed("proto_snapshot_server", "cosign", frames(b"COSIGN", COSIG))
seed("proto_snapshot_server", "cosign-short", frames(b"COSIGN", COSIG[:100]))
seed("proto_updates", "head-cosigned", frames(b"HEAD", HEAD, COSIG, COSIG))
seed("proto_snapshot_agent", "end-cosigned", frames(b"END", u64(1), u64(1), HEAD, COSIG))
seed("proto_snapshot_server", "ack-relayed", frames(b"ACK", u64(9), CHAIN, DIR))
seed("upstream", "control", "serv\x1ber")
