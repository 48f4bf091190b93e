#!/usr/bin/python3
"""One instance per directory: a second keyclone-server or keyclone-agent on
the same --dir (with other endpoints) is refused at start with the first
one's pid, and the first keeps working; `make run` (tests/run.sh) says
when keyclone is already running instead of starting another."""
import os
import re
import signal
import subprocess

import kc
from cluster import Cluster, free_base_port

C = Cluster(server_options=["--heartbeat", "200"])


def test_setup():
    C.start_server()
    C.add_agent()
    C.wait_converged()


def test_a_second_server_on_the_same_directory_is_refused():
    base = free_base_port()
    out, err = kc.run([os.path.join(kc.BIN, "keyclone-server"), "--dir", C.dir,
                       "--bind-snapshot", f"tcp://127.0.0.1:{base}", "--bind-updates", f"tcp://127.0.0.1:{base + 1}",
                       "--bind-submit", f"tcp://127.0.0.1:{base + 2}"], expect=1, timeout=10)
    kc.check(f"is in use by pid {C.server.pid}" in err, err)
    key = kc.keyclone("keygen", "after", "--dir", C.root_dir)[0].strip()
    C.cli("register", "after", "--key", key)
    C.wait_converged()


def test_a_second_agent_on_the_same_directory_is_refused():
    agent = C.agents[0]
    out, err = kc.run([os.path.join(kc.BIN, "keyclone-agent"), "--dir", agent.dir, "--root",
                       os.path.join(C.dir, "root"), "--local", f"ipc://{agent.dir}/other.ipc",
                       "--events", f"ipc://{agent.dir}/other-events.ipc"], expect=1, timeout=10)
    kc.check(f"is in use by pid {agent.proc.pid}" in err, err)
    kc.check(agent.status()["state"] == "fresh", agent.status())


def test_make_run_says_it_is_already_running():
    work = kc.tempdir()
    env = dict(os.environ, KC_BUILD=kc.BUILD, KEYCLONE_ENDPOINT=f"tcp://127.0.0.1:{free_base_port()}")
    script = os.path.join(kc.ROOT, "tests", "run.sh")
    first = subprocess.Popen(["sh", script], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        for line in first.stdout:
            if "keyclone is running" in line:
                break
        second = subprocess.run(["sh", script], cwd=work, env=env, capture_output=True, text=True, timeout=30)
        kc.check(second.returncode == 1 and "keyclone is already running on" in second.stdout, second)
        with open(os.path.join(work, "var", "server.lock")) as f:
            pid = f.read().strip()
        kc.check(f"server pid {pid}" in second.stdout, second.stdout)
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(10)


def test_the_server_remembers_agents_and_names_signers():
    """Acknowledgements survive a server restart (status --server lists the
    agent though it cannot acknowledge again: it is stopped), and accepted
    batches are credited to the operators who signed them."""
    agent = C.agents[0]
    status = C.wait_converged()
    # The agent acknowledges with the next head (within a heartbeat)
    kc.wait_for(lambda: [a for a in C.server_status()["agents"] if a["seq"] == status["seq"]], 10,
                what="the agent's acknowledgement to reach the server")
    agent.stop()
    C.stop_server()
    C.start_server()
    agents = C.server_status()["agents"]
    kc.check(len(agents) == 1 and agents[0]["name"] == agent.name and agents[0]["seq"] == status["seq"],
             agents)
    kc.check(re.search(r"accepted batch \d+ \(1 record\) signed by op1; submitted by [0-9A-F]{8}",
                       C.server_log_text()), C.server_log_text()[-2000:])
    agent.start()
    C.wait_converged()


if __name__ == "__main__":
    kc.main([test_setup, test_a_second_server_on_the_same_directory_is_refused,
             test_a_second_agent_on_the_same_directory_is_refused, test_make_run_says_it_is_already_running,
             test_the_server_remembers_agents_and_names_signers])
