#!/usr/bin/python3
"""Every option a command accepts is in its --help, and every option its
--help names is accepted: each `keyclone` subcommand, keyclone-server,
keyclone-agent, keyclone-mirror and keyclone-witness.

The candidate options come from the source (every `{ "name", ..._argument`
entry of a getopt_long table in cli/, server/ and agent/); whether a command
accepts one comes from the binary itself: it is run with the option followed
by a sentinel option no command has. getopt_long reports an option it does
not know as "unrecognized option '--name'"; an option the command takes lets
parsing go on to the sentinel (or fails with a message naming the option,
when the probe value is out of range). The sentinel always makes the command
exit with a usage error, so nothing is created, contacted or started."""
import concurrent.futures
import glob
import os
import re
import subprocess

import kc

SENTINEL = "--kc-no-such-option"
#  Spellings a command accepts that are not for users: left out of --help.
INTERNAL = {
    ("keyclone status", "server-status"): "what `status --server` without an endpoint is rewritten to",
    ("keyclone metrics", "server-status"): "what `metrics --server` without an endpoint is rewritten to",
}


def table_options(paths):
    """{name: has_arg} of every long option in the getopt tables of these files."""
    options = {}
    for path in paths:
        text = open(path).read()
        for name, kind in re.findall(r'\{\s*"([a-z][a-z0-9-]*)",\s*(no|required|optional)_argument', text):
            options[name] = kind
    kc.check(options, f"no getopt table found in {paths}")
    return options


def probe(command, name, kind):
    """True if command accepts --name (see the module's docstring)."""
    args = command.split()
    program = os.path.join(kc.BIN, args[0])
    option = f"--{name}" if kind == "no" else f"--{name}=1"
    result = subprocess.run([program, *args[1:], option, SENTINEL], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, KEYCLONE_DIR="/nonexistent"))
    unknown = f"unrecognized option '--{name}"
    kc.check(result.returncode != 0, f"{command} {option} {SENTINEL} exited 0:\n{result.stdout}")
    if unknown in result.stderr or "ambiguous" in result.stderr:
        return False
    return (f"unrecognized option '{SENTINEL}'" in result.stderr
            or re.search(f"--{name}(?![\\w-])", result.stderr) is not None)


def help_text(command):
    args = command.split()
    out, _ = kc.run([os.path.join(kc.BIN, args[0]), *args[1:], "--help"])
    return out


def commands():
    out, _ = kc.run([kc.KEYCLONE, "--help"])
    names = re.findall(r"^  ([a-z]+)\s{2,}\S", out, re.M)
    kc.check(len(names) >= 12, f"keyclone --help lists only {names}")
    return [f"keyclone {name}" for name in names] + ["keyclone-server", "keyclone-agent", "keyclone-mirror",
                                                     "keyclone-witness"]


def check_command(command, candidates):
    text = help_text(command)
    #  --help and --version act at once, as GNU programs do (test_every_program_has_a_version)
    immediate = {"help", "version"} if "-" in command.split()[0] else {"help"}
    mentioned = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*[a-z0-9])(?![\w-])", text)) - immediate
    names = (set(candidates) | mentioned) - immediate
    with concurrent.futures.ThreadPoolExecutor(4) as pool:      # each probe is a process
        verdicts = dict(zip(names, pool.map(lambda n: probe(command, n, candidates.get(n, "required")), names)))
    accepted = {name for name, yes in verdicts.items() if yes}
    #  getopt_long takes any unique prefix of an option for the option: a name
    #  that is a prefix of another accepted one cannot be told apart from it
    abbreviations = {n for n in accepted if any(m != n and m.startswith(n) for m in accepted)}
    missing = sorted(n for n in accepted - mentioned - abbreviations if (command, n) not in INTERNAL)
    kc.check(not missing, f"'{command} --help' does not mention --{', --'.join(missing)}, "
                          f"which it accepts:\n{text}")
    stale = sorted(mentioned - accepted)
    kc.check(not stale, f"'{command} --help' mentions --{', --'.join(stale)}, which it refuses:\n{text}")
    return len(accepted - abbreviations)


def test_every_option_is_in_help():
    cli = table_options(glob.glob(os.path.join(kc.ROOT, "cli", "*.c")))
    daemons = {"keyclone-server": table_options([os.path.join(kc.ROOT, "server", "main.c")]),
               "keyclone-agent": table_options([os.path.join(kc.ROOT, "agent", "main.c")]),
               "keyclone-mirror": table_options([os.path.join(kc.ROOT, "mirror", "main.c")]),
               "keyclone-witness": table_options([os.path.join(kc.ROOT, "witness", "main.c")])}
    counts = {}
    for command in commands():
        counts[command] = check_command(command, daemons.get(command, cli))
    print("  options accepted and documented: " + ", ".join(f"{c} {n}" for c, n in counts.items()))


def test_the_probe_tells_accepted_from_refused():
    kc.check(probe("keyclone keygen", "force", "no"), "keygen --force not seen as accepted")
    kc.check(not probe("keyclone keygen", "timeout", "required"), "keygen --timeout seen as accepted")
    kc.check(probe("keyclone-agent", "policy", "required"), "keyclone-agent --policy not seen as accepted")


def test_every_program_has_a_version():
    """--version on every binary, and the version in both STATUS replies."""
    versions = set()
    for program in ("keyclone", "keyclone-server", "keyclone-agent", "keyclone-mirror", "keyclone-witness"):
        out, _ = kc.run([os.path.join(kc.BIN, program), "--version"])
        match = re.fullmatch(rf"{program} (\d+\.\d+\.\d+) \(libzmq \d+\.\d+\.\d+, czmq \d+\.\d+\.\d+, "
                             r"libsodium [\d.]+, sqlite [\d.]+\)\n", out)
        kc.check(match, f"{program} --version printed {out!r}")
        versions.add(match.group(1))
    kc.check(len(versions) == 1, versions)
    from cluster import Cluster
    cluster = Cluster()
    cluster.start_server()
    agent = cluster.add_agent()
    cluster.wait_converged()
    kc.check(cluster.server_status()["version"] in versions, cluster.server_status())
    kc.check(agent.status()["version"] in versions, agent.status())
    agent.stop()
    cluster.stop_server()


if __name__ == "__main__":
    kc.main([test_the_probe_tells_accepted_from_refused, test_every_option_is_in_help,
             test_every_program_has_a_version])
