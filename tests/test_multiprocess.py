"""Two real processes (one CPU device each, a loopback coordinator) run SFT, DPO and PPO at tiny size: the same
per-step metrics as one process with two devices, one copy of every run-directory file, and a run stopped part-way
(`train.stop_at_step`, as after a preemption) resumes to the same end."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from rlaif_jax import models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_KEYS = ("tokens_per_s", "rollout_seconds", "update_seconds", "compile_seconds", "compiles")

JOBS = {  # job -> (config, overrides, the step the first 2-process launch stops at)
    "sft": ("configs/sft.py:tiny", ["--config.train.num_steps=40", "--config.export_hf=True"], 20),
    "dpo": ("configs/dpo.py:tiny", ["--config.sft_first=False", "--config.train.log_every=2"], 6),
    "ppo": (
        "configs/ppo.py:tiny",
        ["--config.train.num_steps=16", "--config.sft.train.num_steps=20", "--config.checkpoint.every_iterations=2"],
        8,
    ),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    env.pop("XLA_FLAGS", None)
    for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(key, None)
    env.update(extra)
    return env


def _main(config: str, workdir: str, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "rlaif_jax.main", f"--config={config}", f"--workdir={workdir}", *overrides]


def _run_one_process_two_devices(config, workdir, overrides):
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    done = subprocess.run(_main(config, workdir, overrides), cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def _launch_two(command: list[str], timeout: int = 600) -> list[str]:
    """Runs `command` as processes 0 and 1 of a 2-process job (loopback coordinator); returns their stdouts."""
    port = _free_port()
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [process.communicate(timeout=timeout) for process in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-4000:]
    return [out for out, _ in outputs]


def _run_two_processes(config, workdir, overrides):
    _launch_two(_main(config, workdir, overrides))


def _metrics(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _files(workdir):
    """Every file of the run directory outside checkpoints/ and tensorboard/ (paths relative to it)."""
    found = set()
    for root, dirs, files in os.walk(workdir):
        dirs[:] = [d for d in dirs if d not in ("checkpoints", "tensorboard")]
        found.update(os.path.relpath(os.path.join(root, name), workdir) for name in files)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("job", sorted(JOBS))
def test_two_processes_match_one_process_with_two_devices_and_resume(tmp_path, job, record_diff):
    config, overrides, stop_step = JOBS[job]
    one, two = str(tmp_path / "one_process"), str(tmp_path / "two_processes")
    _run_one_process_two_devices(config, one, overrides)
    first_launch = [*overrides, f"--config.train.stop_at_step={stop_step}"]
    if job == "sft":  # an old run in the way: --config.overwrite moves it aside once (process 0), then both start
        os.makedirs(two)
        with open(os.path.join(two, "old_run.txt"), "w") as f:
            f.write("an earlier run\n")
        first_launch.append("--config.overwrite=True")
    _run_two_processes(config, two, first_launch)
    if job == "sft":
        moved = [name for name in os.listdir(tmp_path) if name.startswith("two_processes.replaced-")]
        assert len(moved) == 1 and os.listdir(tmp_path / moved[0]) == ["old_run.txt"]
    stopped = _metrics(os.path.join(two, "metrics.jsonl"))
    assert stopped and stopped[-1]["step"] <= stop_step + 2
    _run_two_processes(config, two, overrides)  # resumes from the checkpoint at the stop

    # One copy of every file: the same files as the one-process run (plus the first launch's config), no temp files.
    assert _files(two) == _files(one) | {"config.json.prev-1"}
    worst_gap = 0.0
    for name in sorted(_files(one)):
        if name.endswith("metrics.jsonl"):
            expected, got = _metrics(os.path.join(one, name)), _metrics(os.path.join(two, name))
            assert [r["step"] for r in got] == [r["step"] for r in expected], name  # no line written twice
            for want, have in zip(expected, got):
                for key, value in want.items():
                    if key not in TIMING_KEYS:
                        assert have[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (name, want["step"], key)
                        if key != "step" and abs(value) > 1e-7:
                            worst_gap = max(worst_gap, abs(have[key] - value) / abs(value))
        elif name.endswith((".json", ".jsonl", ".safetensors", ".npz")) and "tokenizer" not in name:
            with open(os.path.join(one, name), "rb") as a, open(os.path.join(two, name), "rb") as b:
                assert a.read() == b.read(), name
    record_diff(f"{job}: worst relative metric gap, 2 processes vs 1 process x 2 devices", worst_gap, 1e-5)
    if job == "sft":
        assert os.path.exists(os.path.join(two, "hf_model", "model.safetensors"))  # gathered from both processes


_LOAD_CHILD = """
import json, sys
import numpy as np
from rlaif_jax import distributed
distributed.initialize()
import jax
from rlaif_jax import models, sharding
from rlaif_jax.checkpoints import hf_slices
read = []
real = hf_slices.SafetensorsSource.read
def spy(self, name, index):
    block = real(self, name, index)
    read.append(block.nbytes)
    return block
hf_slices.SafetensorsSource.read = spy
lm = models.load(sys.argv[1], mesh=sharding.make_mesh(fsdp=-1))
tokens = sharding.place_batch(np.arange(16, dtype=np.int32).reshape(2, 8) % 128, lm.mesh, lm.rules)
logits = distributed.to_host(jax.jit(lambda p, t: lm.module.apply({"params": p}, t))(lm.params, tokens))
print(json.dumps({"read_bytes": sum(read), "logits": np.asarray(logits).tolist()}))
"""


def test_two_processes_each_read_only_their_half_of_an_hf_checkpoint(tmp_path, tiny_hf_llama):
    directory, hf_model = tiny_hf_llama("llama_untied")
    total = sum(p.numel() * 4 for p in hf_model.state_dict().values())
    outputs = _launch_two([sys.executable, "-c", _LOAD_CHILD, directory], timeout=300)
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    lm = models.load(directory)
    tokens = np.arange(16, dtype=np.int32).reshape(2, 8) % 128
    expected = np.asarray(lm.module.apply({"params": lm.params}, tokens))
    norms = sum(p.numel() * 4 for name, p in hf_model.state_dict().items() if "norm" in name)
    for result in results:
        np.testing.assert_allclose(np.asarray(result["logits"]), expected, atol=1e-5)
        # Half of every split tensor, plus the replicated norms whole.
        assert result["read_bytes"] == (total - norms) // 2 + norms, (result["read_bytes"], total)
