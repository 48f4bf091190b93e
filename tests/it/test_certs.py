#!/usr/bin/python3
"""czmq and pyzmq certificate directories (issue 12): `keyclone import` reads
a zcertstore / zmq.auth directory into registration batches, reporting what
it skipped and why; `keyclone export` writes the directory's keys back as
czmq public certificates that czmq's own zcertstore (build/tests/
kc_certstore) and pyzmq's zmq.auth.load_certificates read, never a revoked
key, and removes what an earlier export wrote once its key is revoked.
Keys are also taken as certificate files and fingerprints, and a
pre-emptive tombstone or a move to another name needs --force. The CLI
reads its defaults from a configuration file.
"""
import json
import os
import re
import shutil
import subprocess
import time

import zmq.auth
import zmq.utils.z85

import kc
from cluster import Cluster

C = Cluster()
CERTS = os.path.join(C.root_dir, "certs")
OUT = os.path.join(C.root_dir, "exported")
CERTSTORE = os.path.join(kc.BUILD, "tests", "kc_certstore")


def public_key(path):
    with open(path) as f:
        return re.search(r'public-key = "(.*)"', f.read()).group(1)


def certstore(directory, *keys):
    """What czmq's zcertstore holds for each key: {key: {meta} or None}."""
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:                # a full unwind, so tests/lsan.supp can name czmq's leak
        env["ASAN_OPTIONS"] += ":fast_unwind_on_malloc=0"
    out = subprocess.run([CERTSTORE, directory, *keys], capture_output=True, text=True, check=True,
                         env=env).stdout
    found = {}
    for line in out.splitlines():           # czmq logs what it cannot parse here too
        key, rest = line[:40], line[41:]
        if key in keys and line[40:41] == " ":
            found[key] = None if rest == "missing" else dict(item.split("=", 1) for item in rest.split(" "))
    kc.check(len(found) == len(keys), f"kc_certstore printed {out!r}")
    return found


def test_setup():
    C.start_server()
    C.add_agent()
    C.wait_converged()


def test_import_reads_a_pyzmq_and_czmq_directory():
    os.makedirs(CERTS)
    # pyzmq: name.key + name.key_secret, no metadata name
    for name in ("web-1", "web-2"):
        zmq.auth.create_certificates(CERTS, name)
    # czmq's layout with a metadata name (keyclone keygen writes it)
    kc.keyclone("keygen", "db-1", "--dir", CERTS)
    os.rename(os.path.join(CERTS, "db-1"), os.path.join(CERTS, "database.key"))
    os.remove(os.path.join(CERTS, "db-1_secret"))
    # what it must skip, each with its reason
    shutil.copy(os.path.join(CERTS, "web-1.key"), os.path.join(CERTS, "zz-web-1.key"))
    with open(os.path.join(CERTS, "README"), "w") as f:
        f.write("these are our servers' keys\n")
    zmq.auth.create_certificates(CERTS, "bad name!")
    with open(os.path.join(CERTS, "evil\x1b[2Jname.key"), "w") as f:
        f.write("not a certificate\n")
    # certificates whose key is malformed: a character outside Z85, a character short
    with open(os.path.join(CERTS, "web-1.key")) as f:
        good = f.read()
    key = re.search(r'public-key = "(.*)"', good).group(1)
    with open(os.path.join(CERTS, "bad-char.key"), "w") as f:
        f.write(good.replace(key, key[:10] + "~" + key[11:]))
    with open(os.path.join(CERTS, "bad-length.key"), "w") as f:
        f.write(good.replace(key, key[:39]))
    out, err = C.cli("import", CERTS, "--tag", "role=legacy", "--operator", "op1")
    kc.check(re.search(r"^imported 3 certificates in 1 batch, seq \d+\.\.\d+; skipped 9 files$", out, re.M), out)
    for pattern in (r"skipped 'web-1\.key_secret': a secret key file \(not read",
                    r"skipped 'zz-web-1\.key': the same key as 'web-1\.key'",
                    r"skipped 'README': not a CURVE public certificate",
                    r"skipped 'bad name!\.key': no valid name in its metadata or file name",
                    r"skipped 'evil\\x1b\[2Jname\.key': not a CURVE public certificate",
                    r"skipped 'bad-char\.key': not a CURVE public certificate: .*public-key is not valid Z85",
                    r"skipped 'bad-length\.key': not a CURVE public certificate: .*public-key is not a 40-character"):
        kc.check(re.search(pattern, err), f"{pattern}\n{err}")
    kc.check("\x1b" not in err, err)
    C.wait_converged()
    agent = C.agents[0]
    for name, path in (("web-1", "web-1.key"), ("web-2", "web-2.key"), ("db-1", "database.key")):
        entry = agent.lookup(public_key(os.path.join(CERTS, path)))
        kc.check(entry["status"] == "trusted" and entry["name"] == name and "role=legacy" in entry["tags"], entry)
    # importing the same directory again registers the same keys again
    out, _ = C.cli("import", CERTS, "--tag", "role=legacy", "--operator", "op1", "--json")
    kc.check(json.loads(out)["imported"] == 3, out)


def test_import_refusals():
    empty = os.path.join(C.root_dir, "empty")
    os.makedirs(empty)
    before = C.server_status()["seq"]
    _, err = C.cli("import", empty, "--operator", "op1", expect=1)
    kc.check("no certificate to import in" in err, err)
    _, err = C.cli("import", os.path.join(C.root_dir, "nowhere"), "--operator", "op1", expect=1)
    kc.check("cannot read the directory" in err and "No such file" in err, err)
    _, err = C.cli("import", expect=2)
    kc.check("expected one CERTDIR" in err, err)
    kc.check(C.server_status()["seq"] == before, "a refused import changed the log")


def test_export_is_read_by_zcertstore_and_zmq_auth():
    C.cli("register", "short-lived", "--key", kc.keyclone("keygen", "short", "--dir", C.root_dir)[0].strip(),
          "--expires", "2s", "--tag", "role=temp", "--operator", "op1")
    C.cli("revoke", "web-2", "--operator", "op1")
    os.makedirs(OUT)
    with open(os.path.join(OUT, "notes.txt"), "w") as f:      # someone else's file stays
        f.write("keep me\n")
    out, _ = C.cli("export", OUT, "--operator", "op1")
    kc.check(re.search(r"^exported \d+ certificates to .* \(left out: 1 revoked, 0 not trusted now\); "
                       r"removed 0 of an earlier export$", out, re.M), out)
    web1, web2, db1 = (public_key(os.path.join(CERTS, p)) for p in ("web-1.key", "web-2.key", "database.key"))
    found = certstore(OUT, web1, web2, db1)
    kc.check(found[web1] and found[web1]["name"] == "web-1" and found[web1]["role"] == "legacy", found)
    kc.check(found[db1] and found[db1]["name"] == "db-1", found)
    kc.check(found[web2] is None, f"a revoked key was exported: {found}")
    loaded = {k.decode() for k in zmq.auth.load_certificates(OUT)}
    kc.check(web1 in loaded and db1 in loaded and web2 not in loaded, loaded)
    # --trusted leaves out a key past its expiry
    time.sleep(2.5)
    out, _ = C.cli("export", OUT, "--trusted", "--operator", "op1", "--json")
    summary = json.loads(out)
    kc.check(summary["not_trusted_now"] == 1 and summary["removed"] == 1, summary)
    kc.check(not os.path.exists(os.path.join(OUT, "short-lived.key")), os.listdir(OUT))
    # a revocation, then the export again: its certificate is gone, so a
    # zauth reading the folder stops trusting it
    C.cli("revoke", "web-1", "--operator", "op1")
    out, _ = C.cli("export", OUT, "--trusted", "--operator", "op1")
    kc.check("removed 1 of an earlier export" in out, out)
    found = certstore(OUT, web1, db1)
    kc.check(found[web1] is None and found[db1], found)
    kc.check(os.path.exists(os.path.join(OUT, "notes.txt")), "export removed a file it did not write")


def z85(raw):
    return zmq.utils.z85.encode(raw).decode()


def test_keys_as_people_give_them():
    """A certificate file or a fingerprint wherever a key goes; --force for a
    pre-emptive tombstone and for moving a key to another name."""
    # a certificate file (pyzmq's, its secret half beside it: only the public key is read)
    public, secret = zmq.auth.create_certificates(C.root_dir, "by-file")
    out, _ = C.cli("register", "by-file", "--key", secret, "--operator", "op1")
    kc.check(out.startswith("registered by-file (") , out)
    C.wait_converged()
    kc.check(C.agents[0].lookup(public_key(public))["name"] == "by-file", "by certificate file")
    out, _ = kc.keyclone("lookup", public, "--agent", C.agents[0].endpoint, "--json")
    kc.check(json.loads(out)["name"] == "by-file", out)
    # fingerprints: a unique hex prefix of 8 digits or more; ambiguity lists the matches
    one, two = bytes.fromhex("deadbeef01") + os.urandom(27), bytes.fromhex("deadbeef11") + os.urandom(27)
    for name, raw in (("amb-1", one), ("amb-2", two)):
        C.cli("register", name, "--key", z85(raw), "--operator", "op1")
    _, err = C.cli("show", "deadbeef", "--operator", "op1", expect=1)
    kc.check("the fingerprint 'deadbeef' matches 2 keys" in err and z85(one) in err and "(amb-2)" in err, err)
    out, _ = C.cli("show", "DEADBEEF1", "--operator", "op1")
    kc.check(" amb-2 " in out and " amb-1 " not in out, out)
    # lookup searches the agent's cache the same way
    C.wait_converged()
    agent = C.agents[0].endpoint
    out, _ = kc.keyclone("lookup", "DEADBEEF1", "--agent", agent, "--json")
    kc.check(json.loads(out)["name"] == "amb-2" and json.loads(out)["key"] == z85(two), out)
    _, err = kc.keyclone("lookup", "deadbeef", "--agent", agent, expect=1)
    kc.check("the fingerprint 'deadbeef' matches 2 keys" in err and "amb-1" in err and "amb-2" in err, err)
    out, _ = kc.keyclone("lookup", "0123456789", "--agent", agent, expect=4)   # no such key, nor name
    kc.check(out.startswith("unknown") and "no key named '0123456789'" in out, out)
    hexname = kc.keyclone("keygen", "cafe0123", "--dir", C.root_dir)[0].strip()
    C.cli("register", "cafe0123", "--key", hexname, "--operator", "op1")
    C.wait_converged()
    out, _ = kc.keyclone("lookup", "cafe0123", "--agent", agent, "--json")
    kc.check(json.loads(out)["name"] == "cafe0123", out)     # a name made of hex digits: the name
    # sign (offline) takes a certificate file, and says why not a fingerprint
    signed = os.path.join(C.root_dir, "by-sign.kcb")
    by_sign, by_sign_secret = zmq.auth.create_certificates(C.root_dir, "by-sign")
    C.cli("sign", "--register", f"by-sign={by_sign_secret},tag=role=x", "--out", signed, "--operator", "op1")
    out, _ = C.cli("submit", signed)
    kc.check("accepted at seq" in out, out)
    C.wait_converged()
    kc.check(C.agents[0].lookup(public_key(by_sign))["name"] == "by-sign", "sign --register with a certificate file")
    _, err = C.cli("sign", "--revoke", "deadbeef1", "--out", signed, "--operator", "op1", expect=1)
    kc.check("looks like a fingerprint: this command cannot look it up" in err, err)
    _, err = C.cli("show", "0123456789", "--operator", "op1", expect=1)
    kc.check("no registered key has the fingerprint '0123456789'" in err, err)
    _, err = C.cli("register", "x", "--key", "not-a-key", "--operator", "op1", expect=1)
    kc.check("is not a key: give a 40-character Z85 key, a certificate file, or a fingerprint" in err, err)
    # moving a key to another name needs --force
    _, err = C.cli("register", "amb-renamed", "--key", "deadbeef0", "--operator", "op1", expect=1)
    kc.check("is registered as 'amb-1': registering it as 'amb-renamed' moves it; add --force" in err, err)
    out, _ = C.cli("register", "amb-renamed", "--key", "deadbeef0", "--force", "--operator", "op1")
    kc.check("registered amb-renamed (DEADBEEF)" in out, out)
    # revoking by fingerprint; a key never registered needs --force
    out, _ = C.cli("revoke", "deadbeef1", "--operator", "op1")
    kc.check(out.startswith("revoked amb-2 (DEADBEEF) at seq"), out)
    stranger = z85(os.urandom(32))
    before = C.server_status()["seq"]
    _, err = C.cli("revoke", stranger, "--operator", "op1", expect=1)
    kc.check("was never registered: revoking it makes a pre-emptive tombstone" in err and "--force" in err, err)
    kc.check(C.server_status()["seq"] == before, "a refused revocation changed the log")
    out, _ = C.cli("revoke", stranger, "--force", "--operator", "op1")
    kc.check("(never registered: a pre-emptive tombstone)" in out, out)
    _, err = C.cli("register", "too-late", "--key", stranger, "--operator", "op1", expect=1)
    kc.check("revoked" in err, err)


def test_bulk_moves_need_force():
    """register --from and import stop at a key registered under another
    name unless --force, naming it; with --force the key moves."""
    key = kc.keyclone("keygen", "mover", "--dir", C.root_dir)[0].strip()
    C.cli("register", "mover", "--key", key, "--operator", "op1")
    bulk = os.path.join(C.root_dir, "moves.txt")
    with open(bulk, "w") as f:
        f.write(f"moved={key}\n")
    before = C.server_status()["seq"]
    _, err = C.cli("register", "--from", bulk, "--operator", "op1", expect=1)
    kc.check("is registered as 'mover': registering it as 'moved' moves it; add --force" in err, err)
    kc.check(C.server_status()["seq"] == before, "a refused move changed the log")
    folder = os.path.join(C.root_dir, "moving")
    os.makedirs(folder)
    shutil.copy(os.path.join(C.root_dir, "mover"), os.path.join(folder, "renamed.key"))
    with open(os.path.join(folder, "renamed.key")) as f:
        text = f.read().replace('name = "mover"', 'name = "renamed"')
    with open(os.path.join(folder, "renamed.key"), "w") as f:
        f.write(text)
    _, err = C.cli("import", folder, "--operator", "op1", expect=1)
    kc.check("registering it as 'renamed' moves it; add --force" in err, err)
    C.cli("register", "--from", bulk, "--force", "--operator", "op1")
    C.wait_converged()
    kc.check(C.agents[0].lookup(key)["name"] == "moved", "the key moved with --force")
    out, _ = C.cli("import", folder, "--force", "--operator", "op1")
    kc.check(out.startswith("imported 1 certificate"), out)


def on_a_terminal(*args):
    """Runs keyclone with stderr on a pty: (the result, what the terminal got)."""
    import pty
    leader, follower = pty.openpty()
    result = subprocess.run([kc.KEYCLONE, *args], stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return result, seen


def test_bulk_work_shows_progress_on_a_terminal():
    """register --from and import, with stderr on a terminal, say how far
    they are and how fast; not on a pipe."""
    bulk = os.path.join(C.root_dir, "progress.txt")
    with open(bulk, "w") as f:
        for i in range(300):
            f.write(f"prog-{i}={z85(os.urandom(32))}\n")
    result, seen = on_a_terminal("register", "--from", bulk, "--batch-size", "100", "--operator", "op1",
                                 "--dir", C.dir)
    kc.check(result.returncode == 0, result)
    lines = re.findall(rb"\rkeyclone register: (\d+) of 300 records \((\d+)%\) in (\d+) batches \(seq \d+\), "
                       rb"\d+ records/s, ETA (\d+):(\d\d) ", seen)
    kc.check([(int(r), int(p), int(b)) for r, p, b, _, _ in lines] == [(100, 33, 1), (200, 66, 2), (300, 100, 3)], seen)
    kc.check(lines[-1][3:] == (b"0", b"00"), f"nothing is left at the end: {seen}")
    _, err = C.cli("register", "--from", bulk, "--batch-size", "100", "--operator", "op1")   # a pipe: quiet
    kc.check("records/s" not in err, err)
    # import knows its total too: the certificate files (not the secret ones)
    certs = kc.tempdir(prefix="kc-progress-certs-")
    for i in range(30):
        zmq.auth.create_certificates(certs, f"imp-{i}")
    result, seen = on_a_terminal("import", certs, "--batch-size", "10", "--operator", "op1", "--dir", C.dir)
    kc.check(result.returncode == 0 and "imported 30 certificates in 3 batches" in result.stdout, result)
    lines = re.findall(rb"\rkeyclone import: (\d+) of 30 records \((\d+)%\) in (\d+) batches \(seq \d+\), "
                       rb"\d+ records/s, ETA \d+:\d\d ", seen)
    kc.check([(int(r), int(p), int(b)) for r, p, b in lines] == [(10, 33, 1), (20, 66, 2), (30, 100, 3)], seen)

def test_the_cli_configuration_file():
    """The CLI reads dir, agent and operator from a ZPL file
    ($KEYCLONE_CONFIG, else $KEYCLONE_DIR/keyclone.conf, else
    /etc/keyclone/keyclone.conf); options and the environment win; a
    missing root says how to name the directory."""
    conf = os.path.join(C.root_dir, "keyclone.conf")
    with open(conf, "w") as f:
        f.write(f'keyclone\n    dir = "{C.dir}"\n    agent = "{C.agents[0].endpoint}"\n    operator = "op1"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("KEYCLONE_DIR", "KEYCLONE_AGENT")}
    env["KEYCLONE_CONFIG"] = conf
    elsewhere = kc.tempdir(prefix="kc-conf-")

    def run(*args, expect=0):
        result = subprocess.run([kc.KEYCLONE, *args], capture_output=True, text=True, env=env, cwd=elsewhere)
        kc.check(result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}{result.stderr}")
        return result.stdout, result.stderr
    out, _ = run("status", "--server")
    kc.check(out.startswith("server: seq "), out)
    out, _ = run("status")
    kc.check(out.startswith("agent: fresh"), out)
    key = kc.keyclone("keygen", "conf-node", "--dir", C.root_dir)[0].strip()
    out, _ = run("register", "conf-node", "--key", key)
    kc.check(out.startswith("registered conf-node"), out)
    # the option wins, and a directory without a root says what to do
    _, err = run("list", "--dir", elsewhere, expect=1)
    kc.check(f"cannot open '{elsewhere}/root'" in err and "name the keyclone directory with --dir or KEYCLONE_DIR"
             in err, err)
    # without $KEYCLONE_CONFIG: $KEYCLONE_DIR/keyclone.conf names the agent
    del env["KEYCLONE_CONFIG"]
    env["KEYCLONE_DIR"] = C.dir
    with open(os.path.join(C.dir, "keyclone.conf"), "w") as f:
        f.write(f'keyclone\n    agent = "{C.agents[0].endpoint}"\n')
    try:
        out, _ = run("status")
        kc.check(out.startswith("agent: fresh"), out)
    finally:
        os.unlink(os.path.join(C.dir, "keyclone.conf"))
    _, err = run("status", expect=5)                # and without it, no agent there
    kc.check("agent" in err, err)
    env["KEYCLONE_CONFIG"] = conf
    del env["KEYCLONE_DIR"]
    # an unreadable configuration is said, and the command goes on
    with open(conf, "w") as f:
        f.write("keyclone\n   dir = broken indentation\n")
    _, err = run("status", "--server", "--dir", C.dir)
    kc.check("cannot read the configuration" in err, err)

if __name__ == "__main__":
    kc.main([test_setup, test_import_reads_a_pyzmq_and_czmq_directory, test_import_refusals,
             test_export_is_read_by_zcertstore_and_zmq_auth, test_keys_as_people_give_them,
             test_bulk_moves_need_force, test_bulk_work_shows_progress_on_a_terminal,
             test_the_cli_configuration_file])
