#!/usr/bin/python3
"""make install (issue 13): into a staging DESTDIR with PREFIX=/usr, it
installs the programs, libkeyclone with its soname, only the public headers,
keyclone.pc, the manual pages (written from the programs' --help), the
hardened systemd units (systemd-analyze verify finds nothing to say), the
sample configurations (the daemons run with them) and bash completion (it
completes commands and options). Installing to the system itself runs
ldconfig."""
import os
import re
import shutil
import subprocess

import kc
from cluster import Cluster

STAGE = {}
PUBLIC = {"keyclone.h", "kc_util.h", "kc_wire.h", "kc_z85.h", "kc_record.h", "kc_keys.h", "kc_meta.h", "kc_curve.h", "kc_zmtp.h",
          "kc_lookup.h", "kc_zap.h", "kc_auth.h"}


def staged(*parts):
    return os.path.join(STAGE["dir"], "usr", *parts)


def test_make_install_into_a_stage():
    STAGE["dir"] = kc.tempdir(prefix="kc-install-")
    kc.run(["make", "-s", "-C", kc.ROOT, "install", f"DESTDIR={STAGE['dir']}", "PREFIX=/usr"], timeout=600)
    for program in ("keyclone", "keyclone-server", "keyclone-agent"):
        kc.check(os.access(staged("bin", program), os.X_OK), f"{program} not installed")
    kc.check(os.readlink(staged("lib", "libkeyclone.so")) == "libkeyclone.so.0"
             and os.readlink(staged("lib", "libkeyclone.so.0")) == "libkeyclone.so.0.1.0", "soname links")
    soname = subprocess.run(["objdump", "-p", staged("lib", "libkeyclone.so.0.1.0")], capture_output=True,
                            text=True).stdout
    kc.check(re.search(r"SONAME\s+libkeyclone\.so\.0\b", soname), soname[:400])
    headers = set(os.listdir(staged("include", "keyclone")))
    kc.check(headers == PUBLIC, f"installed headers: {sorted(headers ^ PUBLIC)} differ from the public set")
    with open(staged("lib", "pkgconfig", "keyclone.pc")) as f:
        kc.check("prefix=/usr" in f.read(), "keyclone.pc names the PREFIX")


def test_an_application_builds_on_the_public_headers():
    source = os.path.join(STAGE["dir"], "app.c")
    with open(source, "w") as f:
        f.write('#include <keyclone.h>\n#include <stdio.h>\n'
                'int main (void) {\n'
                '    kc_why_t why;\n'
                '    kc_lookup_t *lookup = kc_lookup_new ("/nonexistent/agent.db", &why);\n'
                '    printf ("%s %d\\n", lookup ? "opened" : why.text, KEYCLONE_VERSION_MAJOR);\n'
                '    kc_lookup_destroy (&lookup);\n'
                '    return 0;\n}\n')
    env = dict(os.environ, PKG_CONFIG_PATH=staged("lib", "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=STAGE["dir"])
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "keyclone"], capture_output=True, text=True,
                           env=env, check=True).stdout.split()
    binary = os.path.join(STAGE["dir"], "app")
    kc.run(["cc", "-std=gnu11", "-Wall", "-Werror", source, "-o", binary, *flags])
    out, _ = kc.run([binary], env=dict(os.environ, LD_LIBRARY_PATH=staged("lib")))
    kc.check(out.strip().endswith(" 0") and "opened" not in out, out)


def test_manual_pages_render_and_name_every_command():
    commands = re.findall(r"^  ([a-z]+) {2,}", kc.keyclone("--help")[0], re.M)
    for page in ("man1/keyclone.1", "man8/keyclone-server.8", "man8/keyclone-agent.8"):
        path = staged("share", "man", page)
        result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True, text=True)
        kc.check(result.returncode == 0 and not result.stderr, f"{page}: {result.stderr}")
        text = subprocess.run(["man", "-l", path], capture_output=True, text=True,
                              env=dict(os.environ, MANWIDTH="100")).stdout
        kc.check("SEE ALSO" in text and "keyclone" in text, f"{page} renders:\n{text[:300]}")
        if page.endswith("keyclone.1"):
            missing = [c for c in commands if not re.search(rf"^   {c}$", text, re.M)]
            kc.check(len(commands) > 20 and not missing, f"keyclone(1) lacks {missing}")


def test_systemd_units_verify_clean():
    for unit in ("keyclone-server.service", "keyclone-agent.service"):
        with open(staged("lib", "systemd", "system", unit)) as f:
            text = f.read()
        for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=keyclone", "User=keyclone",
                        "ExecStart=/usr/bin/", "ExecReload=/bin/kill -HUP $MAINPID"):
            kc.check(setting in text, f"{unit} lacks {setting}")
        # verified as installed, its programs found where the stage put them
        copy = os.path.join(STAGE["dir"], unit)
        with open(copy, "w") as f:
            f.write(text.replace("ExecStart=/usr/bin/", f"ExecStart={staged('bin')}/"))
        # (its Documentation= pages looked up where the stage put them too)
        result = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True,
                                env=dict(os.environ, MANPATH=staged("share", "man")))
        kc.check(result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(),
                 f"systemd-analyze verify {unit}: {result.returncode}\n{result.stdout}{result.stderr}")
    # and it does find fault: a unit naming a program that is not there
    with open(copy, "a") as f:
        f.write("\n[Service]\nExecStartPre=/nonexistent/keyclone-check\n")
    result = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True,
                            env=dict(os.environ, MANPATH=staged("share", "man")))
    kc.check(result.returncode != 0 and "nonexistent" in result.stderr, result.stderr)


def test_the_sample_configurations_run():
    cluster = Cluster()
    sample = staged("share", "doc", "keyclone", "examples", "server.cfg")
    cluster.start_server("--config", sample)
    kc.check(cluster.server_status()["seq"] == 0, "the server runs on the sample configuration")
    agent = cluster.add_agent(start=False)
    with open(staged("share", "doc", "keyclone", "examples", "agent.cfg")) as f:
        text = f.read()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    config = os.path.join(agent.dir, "agent.cfg")
    with open(config, "w") as f:                  # the node's own paths, as its administrator would
        f.write(text.replace("/etc/keyclone/root", os.path.join(cluster.dir, "root")).replace("keyclone-apps", group))
    agent.options = ["--config", config]
    agent.start()
    st = agent.wait_seq(cluster.server_status()["seq"], 30)
    kc.check(st["state"] == "fresh" and st["policy"] == "serve", st)
    agent.stop()
    cluster.stop_server()


def test_bash_completion():
    script = staged("share", "bash-completion", "completions", "keyclone")

    def complete(*words):
        line = " ".join(words)
        program = (f'export PATH={staged("bin")}:$PATH; source {script}; COMP_WORDS=({line}); '
                   f'COMP_CWORD={len(words) - 1}; _keyclone; echo "${{COMPREPLY[@]}}"')
        return subprocess.run(["bash", "-c", program], capture_output=True, text=True).stdout.split()

    kc.check(complete("keyclone", "gr") == ["grant"], complete("keyclone", "gr"))
    kc.check("enrol" in complete("keyclone", "e") and "export" in complete("keyclone", "e"), "commands")
    options = complete("keyclone", "enrol", "--t")
    kc.check("--token" in options and "--tag" in options and "--timeout" in options, options)


def test_installing_to_the_system_runs_ldconfig():
    if os.geteuid() != 0:
        print("    (not root: the ldconfig step is for root installs)")
        return
    prefix = kc.tempdir(prefix="kc-prefix-")
    out, _ = kc.run(["make", "-C", kc.ROOT, "install", f"PREFIX={prefix}"], timeout=600)
    kc.check(re.search(r"^ldconfig$", out, re.M), out[-500:])
    kc.run(["make", "-s", "-C", kc.ROOT, "uninstall", f"PREFIX={prefix}"], timeout=600)
    kc.check(not os.path.exists(os.path.join(prefix, "bin", "keyclone")), "uninstall left keyclone")
    shutil.rmtree(prefix, ignore_errors=True)


def test_make_prints_one_line_per_file():
    """Without V=1, relinking the shared library prints one line (LD), not
    the commands that make its links; V=1 shows them. In a copy of the
    build's objects, so the build under test is not relinked."""
    copy = kc.tempdir(prefix="kc-quiet-")
    for part in ("obj", "gen", "config.mk"):
        source = os.path.join(kc.BUILD, part)
        kc.check(os.path.exists(source), f"no {source}: build first")
        subprocess.run(["cp", "-a", source, copy], check=True)
    library = os.path.join(copy, "lib", "libkeyclone.so.0.1.0")
    #   As a user types it: not as a submake of the make check running us
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    for verbose in ("0", "1"):
        out, err = kc.run(["make", "--no-print-directory", "-j1", "-C", kc.ROOT, f"B={copy}", f"V={verbose}",
                           "-W", os.path.join(copy, "obj", "lib", "kc_file.o"), library], env=env, timeout=300)
        lines = (out + err).splitlines()
        if verbose == "0":
            kc.check(lines == [f"  LD   {library}"], f"make printed: {lines}")
        else:
            kc.check(any(line.startswith("ln -sf libkeyclone.so.0.1.0 ") for line in lines), lines)
        kc.check(os.readlink(os.path.join(copy, "lib", "libkeyclone.so")) == "libkeyclone.so.0", "the link")


if __name__ == "__main__":
    kc.main([test_make_install_into_a_stage, test_an_application_builds_on_the_public_headers,
             test_manual_pages_render_and_name_every_command, test_systemd_units_verify_clean,
             test_the_sample_configurations_run, test_bash_completion, test_installing_to_the_system_runs_ldconfig,
             test_make_prints_one_line_per_file])
