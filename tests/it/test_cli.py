#!/usr/bin/python3
"""The first keyclone commands as a new user tries them: init, keygen, sign,
cosign, verify; thresholds, forged and truncated files, wrong directories,
usage errors, secret-file permissions, and czmq/pyzmq certificate interop."""
import json
import os
import re
import stat

import kc

T = kc.tempdir()
D = os.path.join(T, "dir")          # 3 operators, threshold 2


def test_init():
    out, _ = kc.keyclone("init", "--dir", D, "--operators", "3", "--threshold", "2",
                         "--threshold-revoke", "1", "--names", "alice,bob,carol")
    kc.check("directory id" in out and "alice_secret" in out, out)
    # dates for people: the date and how far away it is
    kc.check(re.search(r"^  root +\S+ \(v1\), expires 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in 36[45] days\)$", out, re.M), out)
    for name in ("root", "operators/alice", "operators/alice_secret", "server/curve_secret",
                 "server/head_secret"):
        kc.check(os.path.exists(os.path.join(D, name)), f"init did not write {name}")
    for secret in ("operators/bob_secret", "server/curve_secret", "server/head_secret"):
        mode = stat.S_IMODE(os.stat(os.path.join(D, secret)).st_mode)
        kc.check(mode == 0o600, f"{secret} has mode {oct(mode)}")
    # a second init refuses to overwrite
    _, err = kc.keyclone("init", "--dir", D, expect=1)
    kc.check("already exists" in err, err)
    out, _ = kc.keyclone("verify", "--dir", D, "--json", os.path.join(D, "root"))
    root = json.loads(out)
    kc.check(root["type"] == "root" and root["version"] == 1, out)
    kc.check(root["thresholds"] == {"register": 2, "revoke": 1, "root": 2}, out)
    kc.check([o["name"] for o in root["operators"]] != [], out)
    kc.check(root["snapshot"] == "tcp://127.0.0.1:5550" and root["submit"] == "tcp://127.0.0.1:5552", out)


def keygen(name):
    out, err = kc.keyclone("keygen", name, "--dir", os.path.join(T, "keys"))
    key = out.strip()
    kc.check(len(key) == 40, out)
    return key


def test_keygen():
    key = keygen("node-1")
    path = os.path.join(T, "keys", "node-1")
    kc.check(stat.S_IMODE(os.stat(path + "_secret").st_mode) == 0o600, "secret mode")
    # refuses to overwrite without --force
    _, err = kc.keyclone("keygen", "node-1", "--dir", os.path.join(T, "keys"), expect=1)
    kc.check("already exists" in err, err)
    out, _ = kc.keyclone("keygen", "node-1", "--dir", os.path.join(T, "keys"), "--force", "--json")
    kc.check(json.loads(out)["public_key"] != key, out)
    # invalid names are usage errors
    kc.keyclone("keygen", "-bad", expect=2)
    kc.keyclone("keygen", "a/b", expect=2)


def test_keygen_pyzmq_interop():
    """pyzmq's certificate loader reads our files; ours read pyzmq's."""
    import zmq.auth
    keygen("interop")
    public, secret = zmq.auth.load_certificate(os.path.join(T, "keys", "interop_secret"))
    out, _ = kc.keyclone("keygen", "interop", "--dir", os.path.join(T, "keys"), "--force", "--json")
    fresh = json.loads(out)
    public, secret = zmq.auth.load_certificate(os.path.join(T, "keys", "interop_secret"))
    kc.check(public.decode() == fresh["public_key"], "pyzmq read a different public key")
    kc.check(len(secret) == 40, "pyzmq found no secret key")
    # a pyzmq-made certificate signs into a batch through its public key
    pub_file, _ = zmq.auth.create_certificates(os.path.join(T, "keys"), "pyzmq-made")
    pyzmq_key = zmq.auth.load_certificate(pub_file)[0].decode()
    out, _ = kc.keyclone("sign", "--dir", D, "--operator", "alice", "--operator", "bob",
                         "--register", f"pyzmq-made={pyzmq_key}", "--out", os.path.join(T, "py.kcb"))
    kc.check("complete" in out, out)


def test_threshold_and_cosign():
    key = keygen("db-1")
    batch = os.path.join(T, "one.kcb")
    out, _ = kc.keyclone("sign", "--dir", D, "--operator", "alice",
                         "--register", f"db-1={key},tag=role=db,tag=dc=eu,expires=30d", "--out", batch)
    kc.check("not complete" in out and "threshold 2 not met (1 valid)" in out, out)
    _, err = kc.keyclone("verify", "--dir", D, batch, expect=1)
    kc.check("signature threshold 2 not met (1 valid)" in err, err)
    # the same operator cosigning again still counts once
    kc.keyclone("cosign", batch, "--dir", D, "--operator", "alice")
    kc.keyclone("verify", "--dir", D, batch, expect=1)
    out, _ = kc.keyclone("cosign", batch, "--dir", D, "--operator", "carol", "--json")
    kc.check(json.loads(out)["complete"] is True, out)
    out, _ = kc.keyclone("verify", "--dir", D, "--json", batch)
    data = json.loads(out)
    kc.check(data["valid"] and len(data["signers"]) == 2, out)
    record = data["records"][0]
    kc.check(record["name"] == "db-1" and record["key"] == key, out)
    kc.check(record["tags"] == ["dc=eu", "role=db"] and record["not_after"] > 0, out)
    out, _ = kc.keyclone("verify", "--dir", D, batch)
    kc.check(re.search(r"^  created +20\S+Z \(\d+ seconds ago\)$", out, re.M)
             and re.search(r" db-1 .* expires 20\S+Z \(in (29|30) days\)", out), out)
    out, _ = kc.keyclone("verify", "--dir", D, os.path.join(D, "root"))
    kc.check(re.search(r"^  created +20\S+Z \(\d+ seconds ago\)$", out, re.M)
             and re.search(r"^  expires +20\S+Z \(in 36[45] days\)", out, re.M), out)


def test_revoke_needs_one():
    key = keygen("gone")
    batch = os.path.join(T, "revoke.kcb")
    out, _ = kc.keyclone("sign", "--dir", D, "--operator", "bob",
                         "--revoke", f"{key},name=gone,reason=stolen, with its disk", "--out", batch)
    kc.check("complete" in out and "not complete" not in out, out)
    out, _ = kc.keyclone("verify", "--dir", D, "--json", batch)
    record = json.loads(out)["records"][0]
    kc.check(record["status"] == "revoked" and record["reason"] == "stolen, with its disk", out)


def test_bulk_from_file():
    lines = ["# bulk registration", ""]
    keys = [keygen(f"bulk-{i}") for i in range(40)]
    lines += [f"bulk-{i}={k},tag=role=web" for i, k in enumerate(keys[:30])]
    lines += [f"register bulk-{i}={k}" for i, k in enumerate(keys[30:35], 30)]
    lines += [f"revoke {k},reason=rebuilt" for k in keys[35:]]
    source = os.path.join(T, "bulk.txt")
    open(source, "w").write("\n".join(lines) + "\n")
    batch = os.path.join(T, "bulk.kcb")
    out, _ = kc.keyclone("sign", "--dir", D, "--operator", "alice", "--operator", "bob",
                         "--from", source, "--out", batch, "--json")
    data = json.loads(out)
    kc.check(data["records"] == 40 and data["register"] == 35 and data["revoke"] == 5, out)
    kc.check(data["complete"] is True, out)
    out, _ = kc.keyclone("verify", "--dir", D, "--json", batch)
    records = json.loads(out)["records"]
    kc.check(sorted(r["key"] for r in records) == sorted(keys), "bulk records differ")
    # a bad line is reported with its line number, nothing is written
    open(source, "a").write("broken-line-without-key\n")
    _, err = kc.keyclone("sign", "--dir", D, "--operator", "alice", "--from", source,
                         "--out", os.path.join(T, "never.kcb"), expect=1)
    kc.check("bulk.txt:43" in err, err)
    kc.check(not os.path.exists(os.path.join(T, "never.kcb")), "a failed sign wrote a file")
    # a key twice in one batch
    dup = os.path.join(T, "dup.txt")
    open(dup, "w").write(f"a={keys[0]}\nb={keys[0]}\n")
    _, err = kc.keyclone("sign", "--dir", D, "--operator", "alice", "--from", dup,
                         "--out", os.path.join(T, "dup.kcb"), expect=1)
    kc.check("appears twice" in err, err)


def test_forged_truncated_extended():
    batch = os.path.join(T, "one.kcb")
    data = open(batch, "rb").read()
    forged = os.path.join(T, "forged.kcb")
    # flip one bit of the last signature
    open(forged, "wb").write(data[:-1] + bytes([data[-1] ^ 1]))
    _, err = kc.keyclone("verify", "--dir", D, forged, expect=1)
    kc.check("bad signature by operator" in err, err)
    # change the record: the body digest changes, every signature fails
    body = bytearray(data)
    body[49 + 70] ^= 1
    open(forged, "wb").write(bytes(body))
    _, err = kc.keyclone("verify", "--dir", D, forged, expect=1)
    kc.check("bad signature" in err, err)
    open(forged, "wb").write(data[:-10])
    _, err = kc.keyclone("verify", "--dir", D, forged, expect=1)
    kc.check("truncated" in err, err)
    open(forged, "wb").write(data + b"\0")
    _, err = kc.keyclone("verify", "--dir", D, forged, expect=1)
    kc.check("trailing" in err, err)
    open(forged, "wb").write(b"garbage")
    kc.keyclone("verify", "--dir", D, forged, expect=1)
    kc.keyclone("verify", "--dir", D, os.path.join(T, "missing"), expect=1)


def test_wrong_directory_and_stranger():
    other = os.path.join(T, "other")
    kc.keyclone("init", "--dir", other, "--endpoint", "tcp://127.0.0.1:6000")
    _, err = kc.keyclone("verify", "--dir", other, os.path.join(T, "one.kcb"), expect=1)
    kc.check("wrong directory" in err, err)
    # an operator of another directory cannot sign for this one
    _, err = kc.keyclone("sign", "--dir", D, "--operator", os.path.join(other, "operators", "op1"),
                         "--register", f"x={keygen('x')}", "--out", os.path.join(T, "x.kcb"), expect=1)
    kc.check("not an operator" in err, err)


def test_secret_mode_refused():
    secret = os.path.join(D, "operators", "carol_secret")
    os.chmod(secret, 0o644)
    try:
        _, err = kc.keyclone("sign", "--dir", D, "--operator", "carol",
                             "--register", f"y={keygen('y')}", "--out", os.path.join(T, "y.kcb"),
                             expect=1)
        kc.check("mode 0644" in err and "chmod 600" in err, err)
    finally:
        os.chmod(secret, 0o600)


def test_usage_errors():
    kc.keyclone(expect=2)
    kc.keyclone("no-such-command", expect=2)
    kc.keyclone("sign", "--dir", D, "--register", "a=b", expect=2)          # no --out
    kc.keyclone("sign", "--dir", D, "--operator", "alice", "--out", os.path.join(T, "z"), expect=2)
    kc.keyclone("verify", expect=2)
    kc.keyclone("init", "--operators", "0", "--dir", os.path.join(T, "zero"), expect=2)
    kc.keyclone("init", "--operators", "2", "--threshold", "3", "--dir", os.path.join(T, "z3"), expect=2)
    kc.keyclone("init", "--endpoint", "udp://nope", "--dir", os.path.join(T, "z4"), expect=2)
    _, err = kc.keyclone("sign", "--dir", D, "--operator", "alice", "--register", "n=short",
                         "--out", os.path.join(T, "z"), expect=1)
    kc.check("40 characters" in err, err)
    # several operators and none chosen
    _, err = kc.keyclone("sign", "--dir", D, "--register", f"n={keygen('n')}",
                         "--out", os.path.join(T, "z"), expect=1)
    kc.check("choose with --operator" in err, err)
    for command in ("init", "keygen", "sign", "cosign", "verify"):
        out, _ = kc.keyclone(command, "--help")
        kc.check(out.startswith("Usage: keyclone " + command), out)
    out, _ = kc.keyclone("--help")
    kc.check("Commands:" in out, out)
    # one exit-status table: an invalid value is a usage error everywhere
    key = keygen("exitcodes")
    _, err = kc.keyclone("register", "x", "--key", key, "--expires", "10x", "--dir", D, expect=2)
    kc.check("--expires: invalid duration '10x'" in err, err)
    kc.keyclone("register", "x", "--key", key, "--version", "v2", "--dir", D, expect=2)
    kc.keyclone("init", "--expires", "10x", "--dir", os.path.join(T, "z5"), expect=2)
    kc.check(re.search(r"^  4  lookup: the key is not trusted", out, re.M)
             and re.search(r"^  5  the server or the agent did not answer", out, re.M), out)
    # nobody answering is 5, and with --json the failure is a JSON object on stdout
    out, err = kc.keyclone("status", "--agent", f"ipc://{T}/nobody.ipc", "--json", expect=5)
    failure = json.loads(out)
    kc.check(failure["exit"] == 5 and failure["command"] == "status" and "no agent at" in failure["error"], out)
    out, _ = kc.keyclone("status", "--server", "--server", "tcp://127.0.0.1:1", "--timeout", "300", "--dir", D,
                         "--json", expect=5)
    kc.check("no answer from tcp://127.0.0.1:1" in json.loads(out)["error"], out)
    out, _ = kc.keyclone("verify", os.path.join(T, "missing.kcb"), "--dir", D, "--json", expect=1)
    kc.check(json.loads(out)["valid"] is False, out)           # its own report: one object, not two
    out, _ = kc.keyclone("sign", "--dir", D, "--operator", "alice", "--register", "n=short",
                         "--out", os.path.join(T, "z"), "--json", expect=1)
    kc.check(json.loads(out)["exit"] == 1 and "40 characters" in json.loads(out)["error"], out)
    # option errors are usage errors like any other: named by the command,
    # and with --json an error object on stdout
    for argv, command, error in (
            (("register", "--json", "--bogus"), "register", "unrecognized option '--bogus'"),
            (("lookup", "--json", "--agent"), "lookup", "option '--agent' requires an argument"),
            (("status", "--json=yes"), "status", "option '--json' takes no argument"),
            (("register", "--t", "x", "--json"), "register", "ambiguous option '--t'"),
            (("root", "renew", "--json", "--bogus"), "root", "unrecognized option '--bogus'"),
            (("bogus", "--json"), "bogus", "unknown command 'bogus'")):
        out, err = kc.keyclone(*argv, expect=2)
        if "--json" in argv:
            failure = json.loads(out)
            kc.check(failure == {"error": error, "command": command, "exit": 2}, f"{argv}: {out}")
        else:
            kc.check(out == "", f"{argv}: {out}")
        kc.check(err.startswith(f"keyclone {command}: {error}\n") or
                 (command == "bogus" and err.startswith(f"keyclone: {error}\n")), f"{argv}: {err}")
    _, err = kc.keyclone("register", "--bogus\x1b[31m", expect=2)
    kc.check("\x1b" not in err and "unrecognized option '--bogus\\x1b[31m'" in err, err)


def test_root_successor_check():
    # a root of another directory is rejected when checked against the pinned one
    _, err = kc.keyclone("verify", "--root", os.path.join(D, "root"),
                         os.path.join(T, "other", "root"), expect=1)
    kc.check("another directory" in err, err)


kc.main([test_init, test_keygen, test_keygen_pyzmq_interop, test_threshold_and_cosign,
         test_revoke_needs_one, test_bulk_from_file, test_forged_truncated_extended,
         test_wrong_directory_and_stranger, test_secret_mode_refused, test_usage_errors,
         test_root_successor_check])
