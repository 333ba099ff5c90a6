"""The library runs with torch absent: a subprocess whose import system cannot find torch imports every module,
loads SmolLM2 from its GGUF, generates, and trains (torch is only the tests' numerical reference)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every meta-path finder is wrapped so that it finds nothing named torch: importlib then sees torch as not
# installed (`import torch` raises ModuleNotFoundError, `find_spec('torch')` is None), as on a machine without it.
_WITHOUT_TORCH = textwrap.dedent(
    """
    import sys

    class _WithoutTorch:
        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                return None
            return self.finder.find_spec(name, path, target)

        def __getattr__(self, attribute):
            return getattr(self.finder, attribute)

    sys.meta_path[:] = [_WithoutTorch(finder) for finder in sys.meta_path]
    """
)

_JOB = textwrap.dedent(
    """
    import importlib, json, os, pkgutil, sys
    try:
        import torch
        raise SystemExit("torch was importable: the test's import blocker failed")
    except ModuleNotFoundError:
        pass

    import rlaif_jax
    modules = [m.name for m in pkgutil.walk_packages(rlaif_jax.__path__, "rlaif_jax.")]
    for name in modules:
        importlib.import_module(name)

    from rlaif_jax import config_defaults, pipelines
    workdir = sys.argv[1]
    generate = config_defaults.load_config_file("generate", "smollm2")
    generate.prompts = ["What is the capital of France?"]
    generate.sampling.max_new_tokens = 8
    pipelines.run(generate, os.path.join(workdir, "generate"))

    sft = config_defaults.load_config_file("sft", "tiny")
    sft.train.num_steps = 2
    sft.checkpoint.every_steps = 1
    pipelines.run(sft, os.path.join(workdir, "sft"))

    with open(os.path.join(workdir, "generate", "generations.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    with open(os.path.join(workdir, "sft", "metrics.jsonl")) as f:
        steps = [json.loads(line) for line in f]
    print(json.dumps({"modules": len(modules), "torch_loaded": "torch" in sys.modules,
                      "completion": rows[0]["completion"], "sft_records": len(steps)}))
    """
)


@pytest.mark.slow
def test_jobs_run_without_torch(smollm2_path, tmp_path):
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH + _JOB, str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["torch_loaded"] is False
    assert summary["modules"] >= 60
    assert "Paris" in summary["completion"]  # SmolLM2 greedy, as configs/generate.py states
    assert summary["sft_records"] >= 1
