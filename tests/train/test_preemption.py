"""SIGTERM to a real training process: it saves the step it was on, exits with PREEMPTED_EXIT_CODE and a line
naming the step, and the same command run again finishes with per-step losses identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rlaif_jax import preemption
from rlaif_jax.workdir import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _command(config: str, workdir, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "rlaif_jax.main", f"--config={config}", f"--workdir={workdir}", *overrides]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=_env())


def _env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device, like the runs the losses are compared with
    return env


def _last_logged_step(workdir) -> int:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    lines = [line for line in open(path).read().splitlines() if line.strip()]
    return json.loads(lines[-1])["step"] if lines else 0


def _terminate_at(command: list[str], workdir, step: int) -> tuple[int, int, str]:
    """Starts `command`, sends SIGTERM once metrics.jsonl has reached `step`; returns (exit code, the step logged
    when the signal was sent, stderr)."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 600
    while _last_logged_step(workdir) < step:
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise AssertionError(f"the run ended before step {step}: {process.communicate()[1][-2000:]}")
        time.sleep(0.05)
    logged = _last_logged_step(workdir)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, logged, stderr


def _saved_steps(workdir) -> list[int]:
    directory = os.path.join(workdir, "checkpoints")
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


# (config, steps of the run, extra overrides): SFT, a reward model and DPO all train through train/loop.fit.
OFFLINE_RUNS = {
    "sft": ("configs/sft.py:tiny", 200, ()),
    "reward_model": ("configs/reward_model.py:tiny", 120, ("--config.train.num_steps=120",)),
    "dpo": ("configs/dpo.py:tiny", 60, ("--config.train.num_steps=60", "--config.sft.train.num_steps=40")),
}


@pytest.mark.parametrize("job", sorted(OFFLINE_RUNS))
def test_sigterm_saves_the_step_and_the_rerun_matches_an_uninterrupted_run(tmp_path, job, record_property):
    config, num_steps, extra = OFFLINE_RUNS[job]
    overrides = ("--config.train.log_every=1", "--config.checkpoint.every_steps=1000", *extra)  # no save nearby
    target = int(np.random.default_rng().integers(5, num_steps - 20))  # a random step, reported if the test fails
    record_property("sigterm_after_step", target)

    code, logged, stderr = _terminate_at(
        _command(config, tmp_path / "stopped", *overrides), tmp_path / "stopped", target
    )
    assert code == preemption.PREEMPTED_EXIT_CODE, (target, stderr[-3000:])
    saved = _saved_steps(tmp_path / "stopped")
    stopped_at = max(saved)
    assert stopped_at >= logged and stopped_at < num_steps, (saved, logged)  # at most the step in flight is lost
    assert f"stopped by a signal at step {stopped_at}" in stderr
    assert _last_logged_step(tmp_path / "stopped") == stopped_at

    resumed = _run(_command(config, tmp_path / "stopped", *overrides))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    uninterrupted = _run(_command(config, tmp_path / "straight", *overrides))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    rows, expected = read_metrics(str(tmp_path / "stopped")), read_metrics(str(tmp_path / "straight"))
    assert [row["step"] for row in rows] == list(range(1, num_steps + 1)) == [row["step"] for row in expected]
    assert [row["loss"] for row in rows] == [row["loss"] for row in expected]  # bit-identical after the resume


def test_stop_on_signal_sets_a_flag_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with preemption.StopOnSignal() as stop:
        assert not preemption.stop_requested(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert stop.received == signal.SIGTERM and preemption.stop_requested(stop)
    assert signal.getsignal(signal.SIGTERM) is before
    assert not preemption.stop_requested(None)


@pytest.mark.parametrize("config", ["configs/grpo.py:tiny"])
def test_sigterm_stops_online_rl_at_an_iteration_boundary(tmp_path, config):
    """Online RL (the shared rl_loop) saves the iteration in flight; the rerun's per-iteration rewards and losses
    equal an uninterrupted run's (the prompts and the RNG of an iteration follow from its index)."""
    overrides = ("--config.train.num_steps=24", "--config.checkpoint.every_iterations=100", "--config.sft_first=False")
    code, logged, stderr = _terminate_at(_command(config, tmp_path / "stopped", *overrides), tmp_path / "stopped", 8)
    assert code == preemption.PREEMPTED_EXIT_CODE, stderr[-3000:]
    stopped_at = max(_saved_steps(tmp_path / "stopped"))
    assert logged <= stopped_at < 24 and f"stopped by a signal at step {stopped_at}" in stderr
    resumed = _run(_command(config, tmp_path / "stopped", *overrides))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    uninterrupted = _run(_command(config, tmp_path / "straight", *overrides))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    rows, expected = read_metrics(str(tmp_path / "stopped")), read_metrics(str(tmp_path / "straight"))
    assert [row["step"] for row in rows] == [row["step"] for row in expected]
    for key in ("loss", "reward_mean", "kl"):
        assert [row[key] for row in rows] == [row[key] for row in expected], key
