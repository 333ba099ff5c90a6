"""Stopping at a step boundary on SIGTERM / SIGINT: the loops save a checkpoint there and raise `Preempted`.

A pod scheduler sends SIGTERM before it kills a job. `StopOnSignal` turns the signal into a flag that the training
loops read between steps (a signal never interrupts a step, a save or a metrics write); `stop_requested` makes
every process agree, so that all of them save the same step. `rlaif_jax.main` exits with `PREEMPTED_EXIT_CODE`
and a line naming the step; running the same command again resumes from it.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: try again (a schedule can requeue on it); not 143 (killed) or 1 (failed)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Raised by a training loop after it saved the checkpoint of `step` because a stop signal arrived."""

    def __init__(self, step: int, workdir: str):
        super().__init__(f"stopped by a signal at step {step}; checkpoint saved in {workdir}; rerun to resume")
        self.step = step
        self.workdir = workdir


class StopOnSignal:
    """Context manager: while inside, SIGTERM and SIGINT set `self.received` instead of killing the process.

    The previous handlers come back on exit. A second signal of the same kind while the flag is set calls the
    previous handler (a second Ctrl-C still kills). Outside the main thread (where Python cannot install handlers)
    it does nothing and `received` stays False.
    """

    def __init__(self):
        self.received: int | None = None  # the signal number, once one arrived
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            return
        self.received = signum
        logging.warning("received %s: stopping at the next step boundary", signal.Signals(signum).name)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def stop_requested(stop: StopOnSignal | None) -> bool:
    """Whether any process received a stop signal. Every process must call it at the same steps: with more than
    one process it is a collective (an all-gather of one flag per process)."""
    local = stop is not None and stop.received is not None
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(local))))
