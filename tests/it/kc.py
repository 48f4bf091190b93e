"""Shared helpers for keyclone's integration tests: where the binaries are,
temp dirs, running commands with asserted exit codes, and child processes
that are always cleaned up."""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("KC_BUILD", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
TESTS = os.path.join(BUILD, "tests")
KEYCLONE = os.path.join(BIN, "keyclone")

_children = []


def tempdir(prefix="kc-it-"):
    """A fresh directory removed at exit (kept if KC_KEEP is set)."""
    path = tempfile.mkdtemp(prefix=prefix)
    if not os.environ.get("KC_KEEP"):
        atexit.register(shutil.rmtree, path, True)
    return path


def run(args, expect=0, input=None, env=None, timeout=60):
    """Runs a command; asserts its exit status; returns (stdout, stderr)."""
    result = subprocess.run(args, input=input, capture_output=True, text=True,
                            env=env, timeout=timeout)
    if expect is not None and result.returncode != expect:
        raise AssertionError(f"{args!r} exited {result.returncode}, expected {expect}\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result.stdout, result.stderr


def keyclone(*args, expect=0, **kwargs):
    return run([KEYCLONE, *args], expect=expect, **kwargs)


def spawn(args, log=None, env=None):
    """Starts a child process that is killed at exit; output goes to log."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    _children.append(proc)
    return proc


def stop(proc, sig=signal.SIGTERM, timeout=10):
    """Sends sig and waits; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@atexit.register
def _reap():
    # Under make check-asan (ASAN_OPTIONS set), children still running get
    # SIGTERM first, so each exits normally and LeakSanitizer checks it.
    if os.environ.get("ASAN_OPTIONS"):
        for proc in _children:
            if proc.poll() is None:
                proc.terminate()
        for proc in _children:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    for proc in _children:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def free_port():
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate until it returns a true value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expected_failure(issue):
    """Marks an attack test whose defence a later issue builds: it must fail
    today (reported as "xfail"); when it starts passing, the run fails so
    that docs/security.md and the mark are updated."""
    def mark(test):
        def run():
            try:
                test()
            except AssertionError as error:
                print(f"xfail {test.__name__}: {str(error).splitlines()[0][:160]} (defence: {issue})")
                return
            raise AssertionError(f"{test.__name__} passed though marked expected-to-fail ({issue}): "
                                 "remove the mark and update docs/security.md")
        run.__name__ = test.__name__
        return run
    return mark


def main(tests):
    """Runs test functions in order, printing each; exits 1 on the first failure.
    KC_ONLY=name,... runs only those (while working on one)."""
    only = [n for n in os.environ.get("KC_ONLY", "").split(",") if n]
    for test in tests:
        if only and test.__name__ not in only:
            continue
        started = time.monotonic()
        try:
            test()
        except Exception:
            import traceback
            traceback.print_exc()
            print(f"FAIL {test.__name__}")
            sys.exit(1)
        print(f"ok   {test.__name__} ({time.monotonic() - started:.2f}s)")
