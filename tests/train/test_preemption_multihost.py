"""Two real processes on a loopback coordinator (one CPU device each): SIGTERM to one of them stops both at the same
step boundary (`preemption.stop_requested` is a collective), the other never having received a signal."""

import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What each process runs: the loops' pattern (a step, then the agreed stop check), printing every step.
WORKER = """
import sys, time
from rlaif_jax import distributed, preemption
distributed.initialize()
import jax
with preemption.StopOnSignal() as stop:
    for step in range(1, 100000):
        time.sleep(0.005)  # a step
        print("step", step, flush=True)
        if preemption.stop_requested(stop):
            print("stopped", step, jax.process_index(), stop.received, flush=True)
            sys.exit(preemption.PREEMPTED_EXIT_CODE)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_to_one_process_stops_every_process_at_the_same_step():
    from rlaif_jax import preemption

    port = _free_port()
    processes = []
    for process_id in range(2):
        env = dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(process_id),
        )
        env.pop("XLA_FLAGS", None)  # one CPU device per process
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    first = processes[1]
    deadline = time.time() + 300
    while True:  # wait until the processes are stepping together
        line = first.stdout.readline()
        assert line, first.stderr.read()[-3000:]
        if line.startswith("step") and int(line.split()[1]) >= 20:
            break
        assert time.time() < deadline
    first.send_signal(signal.SIGTERM)  # only process 1 gets the signal
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    stops = [[line.split() for line in out.splitlines() if line.startswith("stopped")] for out in outputs]
    assert [process.returncode for process in processes] == [preemption.PREEMPTED_EXIT_CODE] * 2, outputs
    assert len(stops[0]) == len(stops[1]) == 1
    (_, step_0, index_0, received_0), (_, step_1, index_1, received_1) = stops[0][0], stops[1][0]
    assert step_0 == step_1  # the same step boundary on both
    assert (index_0, index_1) == ("0", "1")
    assert received_0 == "None" and received_1 == str(int(signal.SIGTERM))  # process 0 stopped by agreement
