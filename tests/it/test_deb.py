#!/usr/bin/python3
"""Debian packages (issue 13): `make deb` builds keyclone, keyclone-server,
keyclone-agent, libkeyclone0 and libkeyclone-dev from the tree with
dpkg-buildpackage, and lintian finds no error in them (make deb fails on
one). The test checks what each package holds, then unpacks them all into a
scratch root and runs a directory from there: keyclone init, the server,
an agent, a registration looked up, and a program built against
libkeyclone-dev and run on libkeyclone0.

Then, as root (CI runs as root on a throw-away machine), it installs them on
this machine with dpkg -i and runs a deployment as docs/operator.md §2a
lays it out: what the postinst made (the user, the groups, each daemon's
state directory), the keys root makes there, the installed units'
ExecStart lines run as their User and Group (setpriv: systemd is not PID 1
in CI), the agent reading its root and key from the packaged paths and
serving a member of keyclone-apps, a rotation; everything is purged after.

The packages are built once, in the plain run of make check: the ASan run
skips this suite (its binaries are not the ones packaged)."""
import glob
import grp
import json
import os
import pwd
import re
import shlex
import stat
import subprocess

import kc
from cluster import free_base_port

DEB = os.path.join(kc.ROOT, "build", "deb")
PACKAGES = ("keyclone", "keyclone-server", "keyclone-agent", "libkeyclone0", "libkeyclone-dev")
STATE = {}


def skipped():
    return "asan" in os.environ.get("KC_BUILD", "")


def deb(package):
    found = [p for p in glob.glob(os.path.join(DEB, f"{package}_*.deb"))]
    kc.check(len(found) == 1, f"{package}: {found}")
    return found[0]


def contents(package):
    out = subprocess.run(["dpkg-deb", "-c", deb(package)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].lstrip(".") for line in out.splitlines() if not line.startswith("l")} | \
           {line.split()[-3].lstrip(".") for line in out.splitlines() if line.startswith("l")}


def test_make_deb():
    if skipped():
        print("    (skipped under ASan: the packages are built in the plain run)")
        return
    #   run.py runs this suite alone, after the others
    out, err = kc.run(["make", "-s", "-C", kc.ROOT, "deb"], timeout=1500)
    kc.check(not re.search(r"^E: ", out + err, re.M), "lintian reported errors:\n" + out[-2000:] + err[-2000:])
    for package in PACKAGES:
        deb(package)


def test_what_each_package_holds():
    if skipped():
        return
    multiarch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True,
                               check=True).stdout.strip()
    expected = {
        "keyclone": ["/usr/bin/keyclone", "/usr/share/man/man1/keyclone.1.gz",
                     "/usr/share/bash-completion/completions/keyclone"],
        "keyclone-server": ["/usr/bin/keyclone-server", "/lib/systemd/system/keyclone-server.service",
                            "/etc/keyclone/server.cfg", "/usr/share/man/man8/keyclone-server.8.gz"],
        "keyclone-agent": ["/usr/bin/keyclone-agent", "/lib/systemd/system/keyclone-agent.service",
                           "/etc/keyclone/agent.cfg", "/usr/share/man/man8/keyclone-agent.8.gz"],
        "libkeyclone0": [f"/usr/lib/{multiarch}/libkeyclone.so.0", f"/usr/lib/{multiarch}/libkeyclone.so.0.1.0"],
        "libkeyclone-dev": ["/usr/include/keyclone/keyclone.h", f"/usr/lib/{multiarch}/libkeyclone.so",
                            f"/usr/lib/{multiarch}/pkgconfig/keyclone.pc"],
    }
    for package, files in expected.items():
        held = contents(package)
        missing = [f for f in files if f not in held]
        kc.check(not missing, f"{package} lacks {missing}")
    kc.check("/usr/include/keyclone/kc_store.h" not in contents("libkeyclone-dev"), "an internal header is packaged")
    # every module keyclone.pc requires (even privately: pkg-config --cflags
    # reads them all) comes with libkeyclone-dev: the package that owns its .pc
    # file on this machine is among its dependencies
    unpacked = kc.tempdir(prefix="kc-deb-dev-")
    subprocess.run(["dpkg-deb", "-x", deb("libkeyclone-dev"), unpacked], check=True)
    with open(os.path.join(unpacked, "usr", "lib", multiarch, "pkgconfig", "keyclone.pc")) as f:
        required = [m for line in f if line.startswith(("Requires:", "Requires.private:"))
                    for m in re.split(r"[\s,]+", line.split(":", 1)[1].strip()) if m]
    kc.check(len(required) >= 4, f"keyclone.pc requires {required}")
    depends = subprocess.run(["dpkg-deb", "-f", deb("libkeyclone-dev"), "Depends"], capture_output=True,
                             text=True, check=True).stdout
    depends = {d.split()[0] for d in depends.split(",")}
    for module in required:
        owner_of_pc = subprocess.run(["dpkg", "-S", f"*/pkgconfig/{module}.pc"], capture_output=True, text=True,
                                     check=True).stdout.split(":")[0]
        kc.check(owner_of_pc in depends, f"keyclone.pc requires {module} ({owner_of_pc}), libkeyclone-dev "
                 f"depends on {sorted(depends)}")
    for package in ("keyclone-server", "keyclone-agent"):
        info = os.path.join(kc.tempdir(prefix="kc-deb-info-"), package)
        subprocess.run(["dpkg-deb", "-e", deb(package), info], check=True)
        with open(os.path.join(info, "conffiles")) as f:
            kc.check(f"/etc/keyclone/{package.split('-')[1]}.cfg" in f.read(), f"{package}: the config is a conffile")
        with open(os.path.join(info, "postinst")) as f:
            postinst = f.read()
        kc.check("adduser --system --group" in postinst and "keyclone-apps" in postinst, postinst)
        kc.check("deb-systemd-helper" in postinst, f"{package}: the unit is registered with systemd")


def test_the_unpacked_packages_run():
    if skipped():
        return
    root = kc.tempdir(prefix="kc-deb-root-")
    for package in PACKAGES:
        subprocess.run(["dpkg-deb", "-x", deb(package), root], check=True)
    multiarch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True,
                               check=True).stdout.strip()
    bin_dir = os.path.join(root, "usr", "bin")
    for program in ("keyclone", "keyclone-server", "keyclone-agent"):
        out, _ = kc.run([os.path.join(bin_dir, program), "--version"])
        kc.check(re.match(rf"{program} 0\.1\.0", out), out)
    # a directory, a server, an agent, a registration: all from the packages
    work = kc.tempdir(prefix="kc-deb-work-")
    keyclone = os.path.join(bin_dir, "keyclone")
    port = free_base_port()
    kc.run([keyclone, "init", "--dir", work, "--endpoint", f"tcp://127.0.0.1:{port}"])
    server = kc.spawn([os.path.join(bin_dir, "keyclone-server"), "--dir", work], log=os.path.join(work, "server.log"))
    node = os.path.join(work, "node")
    os.makedirs(node)
    key = kc.run([keyclone, "keygen", "node", "--dir", node])[0].strip()
    kc.run([keyclone, "register", "node-1", "--key", key, "--dir", work], timeout=30)
    agent = kc.spawn([os.path.join(bin_dir, "keyclone-agent"), "--dir", node, "--root", os.path.join(work, "root")],
                     log=os.path.join(node, "agent.log"))

    def looked_up():
        result = subprocess.run([keyclone, "lookup", "node-1", "--agent", f"ipc://{node}/agent.ipc", "--json"],
                                capture_output=True, text=True)
        keys = json.loads(result.stdout).get("keys", []) if result.returncode == 0 else []
        return [k["status"] for k in keys] == ["trusted"]
    kc.wait_for(looked_up, 30, what="the packaged agent to trust node-1")
    kc.stop(agent)
    kc.stop(server)
    # libkeyclone-dev + libkeyclone0: a program built and run on them
    source = os.path.join(work, "app.c")
    with open(source, "w") as f:
        f.write('#include <keyclone.h>\n#include <stdio.h>\n'
                'int main (void) { kc_why_t why; kc_lookup_t *l = kc_lookup_new ("' + node + '/agent.db", &why);\n'
                '    printf ("%s\\n", l ? "opened" : why.text); kc_lookup_destroy (&l); return 0; }\n')
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(root, "usr", "lib", multiarch, "pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=root)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "keyclone"], capture_output=True, text=True,
                           env=env, check=True).stdout.split()
    binary = os.path.join(work, "app")
    kc.run(["cc", "-std=gnu11", "-Wall", "-Werror", source, "-o", binary, *flags])
    out, _ = kc.run([binary], env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "usr", "lib", multiarch)))
    kc.check(out.strip() == "opened", out)
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True,
                            env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "usr", "lib", multiarch))).stdout
    kc.check(re.search(r"libkeyclone\.so\.0 => " + re.escape(root), linked), linked)


def unit(name):
    """The [Service] settings of an installed unit: {key: value}."""
    settings = {}
    with open(f"/lib/systemd/system/{name}.service") as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep and not line.startswith("#"):
                settings[key] = value
    return settings


def owner(path):
    st = os.stat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def as_unit(settings, log):
    """Runs a unit's ExecStart as its User and Group (with the user's
    groups, no new privileges and its UMask), as systemd would."""
    return kc.spawn(["sh", "-c", f"umask {settings['UMask']}; exec \"$@\"", "sh",
                     "setpriv", f"--reuid={settings['User']}", f"--regid={settings['Group']}", "--init-groups",
                     "--no-new-privs", "--", *shlex.split(settings["ExecStart"])], log=log)


def as_user(user, *argv, expect=0):
    result = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv],
                            capture_output=True, text=True, cwd="/", env=dict(PATH="/usr/bin:/bin"), timeout=60)
    kc.check(result.returncode == expect, f"as {user}: {argv}: exit {result.returncode}, expected {expect}\n"
             f"{result.stdout}{result.stderr}")
    return result.stdout


LEFT_BEHIND = ("/etc/keyclone", "/var/lib/keyclone")
APP_USERS = ("kc-deb-app", "kc-deb-other")


def test_the_installed_packages_deploy_a_node():
    if skipped():
        return
    if os.geteuid() != 0:
        print("    (skipped: installing the packages on this machine needs root, as in CI)")
        return
    installed = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *PACKAGES],
                               capture_output=True, text=True).stdout
    kc.check(" installed" not in installed and not any(os.path.exists(p) for p in LEFT_BEHIND),
             f"keyclone is already installed on this machine (or {LEFT_BEHIND} exist): this test installs "
             f"and purges the packages, run it on a throw-away machine\n{installed}")
    try:
        kc.run(["dpkg", "-i", *[deb(p) for p in PACKAGES]], timeout=300,
               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        s_deployment()
    finally:
        for user in APP_USERS:
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["dpkg", "--purge", *PACKAGES], capture_output=True, timeout=300)
        subprocess.run(["rm", "-f", "/etc/keyclone/root"])
        subprocess.run(["rmdir", "/etc/keyclone"], capture_output=True)
    left = [p for p in LEFT_BEHIND if os.path.exists(p)]
    kc.check(not left, f"dpkg --purge left {left}")


def s_deployment():
    # what the postinst made
    kc.check(pwd.getpwnam("keyclone").pw_shell in ("/usr/sbin/nologin", "/bin/false"), "keyclone has a shell")
    kc.check("keyclone" in grp.getgrnam("keyclone-apps").gr_mem, "keyclone is not in keyclone-apps")
    kc.check(owner("/var/lib/keyclone/server") == ("keyclone", "keyclone", 0o750), owner("/var/lib/keyclone/server"))
    kc.check(owner("/var/lib/keyclone/agent") == ("keyclone", "keyclone-apps", 0o750), owner("/var/lib/keyclone/agent"))
    server_unit, agent_unit = unit("keyclone-server"), unit("keyclone-agent")
    # each unit its own state directory: systemd re-owns a unit's whole tree
    kc.check(server_unit["StateDirectory"] == "keyclone/server" and agent_unit["StateDirectory"] == "keyclone/agent",
             f"{server_unit['StateDirectory']} / {agent_unit['StateDirectory']}")
    for settings in (server_unit, agent_unit):
        kc.check("--config /etc/keyclone/" in settings["ExecStart"], settings["ExecStart"])
        kc.check(settings["ExecStart"].split("--dir ")[1].split()[0] ==
                 "/var/lib/" + settings["StateDirectory"], settings["ExecStart"])

    # the server's host, as root, as operator.md 2a says; the keys are the server's
    port = free_base_port()
    as_user("root", "keyclone", "init", "--dir", "/var/lib/keyclone/server", "--endpoint", f"tcp://127.0.0.1:{port}")
    for path in ("server/curve_secret", "server/head_secret", "server"):
        kc.check(owner("/var/lib/keyclone/server/" + path)[0] == "keyclone",
                 f"{path}: {owner('/var/lib/keyclone/server/' + path)}")
    kc.check(owner("/var/lib/keyclone/server/server/curve_secret")[2] == 0o600, "curve_secret is not 0600")
    work = kc.tempdir(prefix="kc-deb-deploy-")
    server = as_unit(server_unit, os.path.join(work, "server.log"))

    # a node: the root in /etc/keyclone, its key made by root in the agent's directory
    os.makedirs("/etc/keyclone", exist_ok=True)
    subprocess.run(["cp", "/var/lib/keyclone/server/root", "/etc/keyclone/root"], check=True)
    key = as_user("root", "keyclone", "keygen", "node", "--dir", "/var/lib/keyclone/agent").strip()
    kc.check(owner("/var/lib/keyclone/agent/node_secret") == ("keyclone", "keyclone-apps", 0o600),
             owner("/var/lib/keyclone/agent/node_secret"))
    as_user("root", "keyclone", "register", "node-1", "--key", key, "--dir", "/var/lib/keyclone/server")
    agent = as_unit(agent_unit, os.path.join(work, "agent.log"))
    # the CLI on the node finds the agent and the root with no option
    def looked_up(user="root", keys=1):
        result = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
                                 "keyclone", "lookup", "node-1", "--json"], cwd="/", capture_output=True,
                                text=True, env=dict(PATH="/usr/bin:/bin"))
        found = json.loads(result.stdout).get("keys", []) if result.returncode == 0 else []
        return [k["status"] for k in found] == ["trusted"] * keys

    def wait_for_agent(what, keys=1):
        try:
            kc.wait_for(lambda: looked_up(keys=keys), 30, what=what)
        except AssertionError as error:
            with open(os.path.join(work, "agent.log")) as f:
                raise AssertionError(f"{error}\nagent.log:\n{f.read()[-3000:]}")
    wait_for_agent("the installed agent to trust node-1")
    # it read its root from /etc/keyclone/agent.cfg: there is none in its directory
    kc.check(not os.path.exists("/var/lib/keyclone/agent/root"), "a root in the agent's directory")
    for name in ("agent.db", "agent.ipc"):
        kc.check(owner("/var/lib/keyclone/agent/" + name)[:2] == ("keyclone", "keyclone-apps"),
                 f"{name}: {owner('/var/lib/keyclone/agent/' + name)}")

    # an application's user in keyclone-apps asks the agent; one outside cannot
    for user in APP_USERS:
        kc.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
    kc.run(["usermod", "--append", "--groups", "keyclone-apps", APP_USERS[0]])
    kc.check(looked_up(APP_USERS[0]), "a member of keyclone-apps cannot look node-1 up")
    result = subprocess.run(["setpriv", f"--reuid={APP_USERS[1]}", f"--regid={APP_USERS[1]}", "--init-groups",
                             "keyclone", "lookup", "node-1"], cwd="/", capture_output=True, text=True,
                            env=dict(PATH="/usr/bin:/bin"))
    kc.check(result.returncode == 5 and "/var/lib/keyclone/agent/agent.ipc" in result.stderr,
             f"a user outside keyclone-apps: exit {result.returncode}: {result.stdout}{result.stderr}")

    # a rotation run by root: the new key stays the agent's
    out = as_user("root", "keyclone", "rotate", "--overlap", "1h")
    code = re.search(r"code +(\S+)", out).group(1)
    as_user("root", "keyclone", "approve", "node-1", "--code", code, "--dir", "/var/lib/keyclone/server")
    out = as_user("root", "keyclone", "rotate", "--overlap", "1h")
    #   whoever comes first puts the new key in place: the running agent (its cache holds the new key) or
    #   this second rotate
    fresh = re.search(r"^node-1 now uses its new key ([0-9A-F]{8})|^/var/lib/keyclone/agent/node holds the new key "
                      r"([0-9A-F]{8}) already", out, re.M)
    kc.check(fresh, out)
    new_key = fresh.group(1) or fresh.group(2)
    # the running agent moved to the new key root's rotate made
    def agent_log():
        with open(os.path.join(work, "agent.log")) as f:
            return f.read()
    kc.wait_for(lambda: re.search(r"this node's key changed in /var/lib/keyclone/agent/node \([0-9A-F]{8} -> "
                                  + new_key + r"|this node's new key " + new_key + r" is registered \(seq \d+\): "
                                  r"put it in place in /var/lib/keyclone/agent/node", agent_log()), 30,
                what="the agent to move to the new key")
    #   the secrets stay 0600; the overlap's end is public (0644); all of them the agent's
    for name, mode in (("node_secret", 0o600), ("node.old_secret", 0o600), ("node.old.until", 0o644)):
        kc.check(owner("/var/lib/keyclone/agent/" + name) == ("keyclone", "keyclone-apps", mode),
                 f"{name}: {owner('/var/lib/keyclone/agent/' + name)}")
    kc.check(kc.stop(agent) == 0, "the agent did not stop cleanly")
    agent = as_unit(agent_unit, os.path.join(work, "agent.log"))
    # node-1's new key and its old one (for the overlap)
    wait_for_agent("the agent, restarted on its rotated key, to answer", keys=2)
    kc.check(agent.poll() is None, "the agent stopped")
    # enrol as root: a key it makes in the agent's directory is the agent's too
    as_user("root", "keyclone", "enrol", "node-2", "--key", "/var/lib/keyclone/agent/spare")
    kc.check(owner("/var/lib/keyclone/agent/spare_secret") == ("keyclone", "keyclone-apps", 0o600),
             owner("/var/lib/keyclone/agent/spare_secret"))
    kc.check(kc.stop(agent) == 0, "the agent did not stop cleanly")
    kc.check(kc.stop(server) == 0, "the server did not stop cleanly")


if __name__ == "__main__":
    kc.main([test_make_deb, test_what_each_package_holds, test_the_unpacked_packages_run,
             test_the_installed_packages_deploy_a_node])
