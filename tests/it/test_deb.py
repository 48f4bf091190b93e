#!/usr/bin/python3
"""Debian packages (issue 13): `make deb` builds keyclone, keyclone-server,
keyclone-agent, libkeyclone0 and libkeyclone-dev from the tree with
dpkg-buildpackage, and lintian finds no error in them (make deb fails on
one). The test checks what each package holds, then unpacks them all into a
scratch root and runs a directory from there: keyclone init, the server,
an agent, a registration looked up, and a program built against
libkeyclone-dev and run on libkeyclone0.

The packages are built once, in the plain run of make check: the ASan run
skips this suite (its binaries are not the ones packaged)."""
import glob
import json
import os
import re
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


if __name__ == "__main__":
    kc.main([test_make_deb, test_what_each_package_holds, test_the_unpacked_packages_run])
