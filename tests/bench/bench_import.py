#!/usr/bin/python3
"""bench_import - `keyclone import` of a 10,000-certificate directory (issue
12), beside `keyclone sign --from` of the same keys (the offline signing of
one bulk file, no server) and `register --from` (the same online path
without reading certificates), measured in the same run.

The directory is pyzmq's layout (name.key + name.key_secret per node, made
with zmq.auth.create_certificates), so import also skips 10,000 secret
files. Times are wall clock of the whole command, median of 3.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import zmq.auth                             # noqa: E402

import kc                                   # noqa: E402
from cluster import Cluster                 # noqa: E402

COUNT = int(os.environ.get("KC_BENCH_IMPORT", "10000"))
ROUNDS = 3


def timed(*args):
    started = time.perf_counter()
    kc.keyclone(*args)
    return time.perf_counter() - started


def main():
    cluster = Cluster(server_options=["--read", "any"])
    cluster.start_server()
    certs = os.path.join(cluster.root_dir, "certs")
    os.makedirs(certs)
    made = time.perf_counter()
    keys = []
    for i in range(COUNT):
        public, _ = zmq.auth.create_certificates(certs, f"node-{i:05d}")
        with open(public) as f:
            keys.append(f.read().split('public-key = "')[1].split('"')[0])
    made = time.perf_counter() - made
    fleet = os.path.join(cluster.root_dir, "fleet.txt")
    with open(fleet, "w") as f:
        for i, key in enumerate(keys):
            f.write(f"node-{i:05d}={key}\n")
    out = os.path.join(cluster.root_dir, "fleet.kcb")
    d = ["--dir", cluster.dir]
    imports = [timed("import", certs, "--operator", "op1", *d) for _ in range(ROUNDS)]
    signs = [timed("sign", "--from", fleet, "--operator", "op1", "--out", out, *d) for _ in range(ROUNDS)]
    registers = [timed("register", "--from", fleet, "--operator", "op1", *d) for _ in range(ROUNDS)]
    imp, sign, reg = (statistics.median(v) for v in (imports, signs, registers))
    print(f"import of a {COUNT:,}-certificate pyzmq directory ({2 * COUNT:,} files, made in {made:.1f} s):")
    print(f"  keyclone import CERTDIR (read, sign, submit)     {imp:6.3f} s  ({COUNT / imp:,.0f} certificates/s)")
    print(f"  keyclone sign --from FILE (sign only, offline)   {sign:6.3f} s  import takes {imp / sign:.2f}x this")
    print(f"  keyclone register --from FILE (sign, submit)     {reg:6.3f} s  import takes {imp / reg:.2f}x this")
    cluster.stop_server()


if __name__ == "__main__":
    main()
