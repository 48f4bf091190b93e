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
