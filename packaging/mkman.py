#!/usr/bin/python3
"""Writes the manual pages keyclone(1), keyclone-server(8),
keyclone-agent(8), keyclone-mirror(8) and keyclone-witness(8) from the programs' own --help texts, so the pages say
exactly what the programs do. Usage: mkman.py BINDIR OUTDIR VERSION"""
import os
import re
import subprocess
import sys

BINDIR, OUTDIR, VERSION = sys.argv[1:4]


def help_of(*args):
    return subprocess.run([os.path.join(BINDIR, args[0]), *args[1:], "--help"], capture_output=True,
                          text=True, check=True).stdout


def roff(text):
    """Preformatted text, escaped for roff."""
    lines = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return ".nf\n" + "\n".join(lines) + "\n.fi\n"


def page(name, section, summary, body, see_also):
    head = (f'.TH {name.upper()} {section} "" "keyclone {VERSION}" "keyclone manual"\n'
            f".SH NAME\n{name} \\- {summary}\n")
    tail = ".SH SEE ALSO\n" + ", ".join(f"\\fB{p}\\fR({s})" for p, s in see_also) + "\n"
    tail += ".PP\nThe full guide: README.md and docs/ in the keyclone sources " \
            "(docs/operator.md, docs/agent.md, docs/protocol.md).\n"
    with open(os.path.join(OUTDIR, f"{name}.{section}"), "w") as f:
        f.write(head + body + tail)


os.makedirs(OUTDIR, exist_ok=True)
main = help_of("keyclone")
commands = re.findall(r"^  ([a-z]+) {2,}(.*)$", main, re.M)
body = ".SH SYNOPSIS\n.B keyclone\n.I COMMAND\n[\\fIOPTIONS\\fR]\n.SH DESCRIPTION\n" + roff(main)
body += ".SH COMMANDS\n"
for command, _ in commands:
    body += f".SS {command}\n" + roff(help_of("keyclone", command))
page("keyclone", 1, "distribute operator-signed ZeroMQ CURVE keys to every node", body,
     [("keyclone-server", 8), ("keyclone-agent", 8)])
for daemon, summary in (("keyclone-server", "the keyclone clone server"),
                        ("keyclone-agent", "the keyclone agent: a node's verified copy of the trusted keys"),
                        ("keyclone-mirror", "an untrusted relay of a keyclone directory's log"),
                        ("keyclone-witness", "a witness that cosigns a keyclone directory's log")):
    text = help_of(daemon)
    page(daemon, 8, summary, f".SH SYNOPSIS\n.B {daemon}\n[\\fIOPTIONS\\fR]\n.SH DESCRIPTION\n" + roff(text),
         [("keyclone", 1), ("keyclone-agent" if daemon == "keyclone-server" else "keyclone-server", 8),
          ("systemd.service", 5)])
