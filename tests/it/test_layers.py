#!/usr/bin/python3
"""The code's structure stays as issue 15 left it: every daemon is a thin
main over lib/ (no daemon's objects, nor the CLI's, use a symbol another
program's objects define), and the modules of one daemon call each other
one way only (their graph of calls between object files has no circle). Read from the objects
the build made (nm), so a call through a header counts as much as one
written out."""
import glob
import os
import subprocess

import kc

DAEMONS = ["server", "agent", "mirror", "witness"]
PROGRAMS = DAEMONS + ["cli"]                # the CLI uses no daemon's code either


def symbols(obj):
    """(defined global functions and data, undefined) of one object file."""
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
    return defined, undefined


def objects(folder):
    found = sorted(glob.glob(os.path.join(kc.BUILD, "obj", folder, "**", "*.o"), recursive=True))
    kc.check(found, f"no objects of {folder}/ in {kc.BUILD}/obj: build first")
    return {os.path.relpath(o, os.path.join(kc.BUILD, "obj")): symbols(o) for o in found}


def test_no_daemon_uses_another():
    by_daemon = {d: objects(d) for d in PROGRAMS}
    for daemon, objs in by_daemon.items():
        used = set().union(*(u for _, u in objs.values()))
        for other, other_objs in by_daemon.items():
            if other == daemon:
                continue
            shared = used & set().union(*(d for d, _ in other_objs.values()))
            kc.check(not shared, f"{daemon}/ uses {other}/'s {sorted(shared)}")


def graph(objs):
    """Edges a -> b: object a uses a symbol object b defines."""
    edges = {a: set() for a in objs}
    for a, (_, used) in objs.items():
        for b, (defined, _) in objs.items():
            if a != b and used & defined:
                edges[a].add(b)
    return edges


def circle(edges):
    """A circle in the graph as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_modules_of_a_daemon_call_one_way():
    for daemon in DAEMONS:
        found = circle(graph(objects(daemon)))
        kc.check(found is None, f"{daemon}/'s modules call each other in a circle: {' -> '.join(found or [])}")


def test_the_check_sees_a_circle():
    # The check itself, on graphs made up here: it must find what it looks for
    kc.check(circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"], "a made-up circle not found")
    kc.check(circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None, "a circle where there is none")


kc.main([test_no_daemon_uses_another, test_modules_of_a_daemon_call_one_way, test_the_check_sees_a_circle])
