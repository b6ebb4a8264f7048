"""The command's processes (roiops/_processes.py) when one of them fails, across machines: two
torchrun agents, each a "machine" with one process, meet at a c10d rendezvous on localhost. The
machine whose process failed ends; torchrun does not stop the other machine's process, which must
end on its own, with an error, instead of waiting for the failed one -- for predict, whose last
wait lasts up to a week, a week. (The demo and predict run over these processes: their whole runs
are tests/test_demo_distributed.py's and tests/test_predict_at_scale.py's.)"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

# Node 0 hosts the rendezvous (it starts first), so it lives on after node 1's end; node 1's
# process exits with status 3 before joining the process group, or inside its work while node 0
# waits for it as predict's rank 0 does (a week).
SCRIPT = """
import datetime, os, sys
from roiops import _processes

_processes.STARTUP = datetime.timedelta(seconds=5)  # instead of 10 minutes
ends = os.environ["NODE"] == "1" and sys.argv[1]
if ends == "before joining":
    os._exit(3)

def work(process):
    if ends == "inside its work":
        os._exit(3)
    process.wait_for_all()
    return 0

_processes.run(work, None, "cpu", datetime.timedelta(days=7))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_listener(port: int, node: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while node.poll() is None and time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"node 0 did not host the rendezvous at port {port} in {seconds} s")


@pytest.mark.parametrize("when", ["before joining", "inside its work"])
def test_a_process_that_fails_on_one_machine_ends_the_other_machines(when, tmp_path):
    script = tmp_path / "processes.py"
    script.write_text(SCRIPT)
    port = free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--nproc-per-node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "processes-test",
               str(script), when]  # fmt: skip
    logs = [tmp_path / f"node-{n}.log" for n in range(2)]
    nodes = []
    for n, log in enumerate(logs):
        with log.open("w") as file:
            nodes.append(
                subprocess.Popen(
                    command,
                    stdout=file,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "NODE": str(n), "OMP_NUM_THREADS": "1"},
                    start_new_session=True,  # its group: torchrun and the process it started
                )
            )
        if n == 0:
            wait_for_listener(port, nodes[0])

    def outputs() -> str:
        return "\n".join(f"{log.name}:\n{log.read_text()[-3000:]}" for log in logs)

    deadline = time.monotonic() + 120  # ~15 s here; without the startup timeout, a week
    try:
        for node in nodes:
            node.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a node was still waiting after 120 s\n{outputs()}")
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    assert nodes[0].returncode != 0 and nodes[1].returncode != 0, outputs()
    survivor = logs[0].read_text()
    assert "ChildFailedError" in survivor  # node 0's process failed (not its torchrun)
    if when == "before joining":
        assert "the others had not all joined the process group after 0:00:05" in survivor
