#!/usr/bin/python3
"""The seed's Hello World (make demo): kc_curve over NULL DEALER/ROUTER prints
each command of the handshake in order, then 'Hello' and 'World' cross. And
an embedder need not call sodium_init: the library initialises libsodium."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kc  # noqa: E402


def test_demo_transcript():
    out, _ = kc.run([os.path.join(kc.TESTS, "kc_curve_demo")], timeout=30)
    steps = [l.split(" (")[0] for l in out.splitlines()
             if l[:2] in ("C:", "S:") and l[2] != " "]
    expected = ["C:HELLO", "S:WELCOME", "C:INITIATE", "S:READY",
                "C:MESSAGE 'Hello'", "S:MESSAGE 'World'"]
    kc.check(steps == expected, f"transcript {steps!r} != {expected!r}\n{out}")
    kc.check("C:HELLO (200 bytes)" in out and "S:WELCOME (168 bytes)" in out,
             "HELLO/WELCOME sizes are not 200/168")
    kc.check("authorised as 'demo-client'" in out, "no authorised identity")
    kc.check(out.rstrip().endswith("-> 'Hello World' test successful"), out)


def test_no_sodium_init_needed():
    """An embedder that calls neither sodium_init nor czmq first (whose
    zsys_init would initialise libsodium) can make keys and codecs."""
    out, _ = kc.run([os.path.join(kc.TESTS, "kc_nosodium")], timeout=30)
    kc.check(out.strip() == "ok", out)


if __name__ == "__main__":
    kc.main([test_demo_transcript, test_no_sodium_init_needed])
