"""LoRA through the jobs: only adapters train and are checkpointed, the base stays bit-identical, the reference is
the base with adapters off, and SFT, reward model, DPO, expert iteration and online RL all run with it."""

import os

import jax
import numpy as np
import pytest

from rlaif_jax import config_defaults, pipelines, sharding
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models import lora
from rlaif_jax.models.setup import build_model
from rlaif_jax.pipelines.sft import load_sft_examples
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import FROZEN_PARAMS, model_params
from rlaif_jax.workdir import read_metrics

LORA = dict(rank=4, alpha=8.0)


def _sft_config(rank: int, num_steps: int = 40, **train):
    config = config_defaults.load_config_file("sft", "tiny")
    config.model.lora.update(rank=rank, alpha=8.0)
    config.train.num_steps = num_steps
    config.train.log_every = 5
    config.checkpoint.every_steps = 20
    config.export_hf = True
    config.train.update(train)
    return config


def _dir_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def test_lora_sft_trains_only_adapters_and_keeps_the_base_bit_identical(tmp_path):
    config = _sft_config(rank=4)
    mesh = sharding.make_mesh(1, 2, 1, devices=jax.devices()[:2])
    lm = build_model(config.model, mesh, None)
    base_before = jax.device_get(lora.split(lm.params)[0])
    examples = load_sft_examples(config.data, lm.tokenizer)
    state, metrics, finished = fit(
        lm=lm,
        loss_fn=sft_loss_fn(lm.module),
        arrays=examples.arrays,
        config=config,
        workdir=str(tmp_path),
        num_steps=config.train.num_steps,
        mesh=mesh,
        rules=None,
        desc="sft",
    )
    assert finished
    # The state trains the adapters only; the frozen base is the loaded model's own arrays, bit for bit.
    assert not lora.split(state["params"])[0]
    for after, before in zip(jax.tree.leaves(state[FROZEN_PARAMS]), jax.tree.leaves(base_before), strict=True):
        np.testing.assert_array_equal(np.asarray(after), before)
    trained_adapters = lora.split(model_params(state))[1]
    first_adapters = lora.split(lm.params)[1]
    changed = [
        bool(np.any(np.asarray(a) != np.asarray(b)))
        for a, b in zip(*map(jax.tree.leaves, (trained_adapters, first_adapters)))
    ]
    assert all(changed)
    losses = [row["loss"] for row in read_metrics(str(tmp_path))]
    assert losses[-1] < losses[0] - 0.1, losses


def test_lora_checkpoints_are_a_fraction_of_full_fine_tuning_and_resume_exactly(tmp_path, record_diff):
    # One device: split 8 ways, the tiny model's arrays are so small that orbax's per-chunk overhead dominates.
    def one_device(config):
        config.mesh.num_devices = 1
        return config

    pipelines.run(one_device(_sft_config(rank=0)), str(tmp_path / "full"))
    pipelines.run(one_device(_sft_config(rank=4)), str(tmp_path / "lora"))
    pipelines.run(one_device(_sft_config(rank=4, stop_at_step=20)), str(tmp_path / "resumed"))
    pipelines.run(one_device(_sft_config(rank=4)), str(tmp_path / "resumed"))
    full = _dir_bytes(tmp_path / "full" / "checkpoints" / "40")
    adapters = _dir_bytes(tmp_path / "lora" / "checkpoints" / "40")
    ratio = record_diff("LoRA r=4 checkpoint / full fine-tuning checkpoint (tiny)", adapters / full, 1 / 3)
    assert ratio <= 1 / 3
    straight = [row["loss"] for row in read_metrics(str(tmp_path / "lora"))]
    assert straight == [row["loss"] for row in read_metrics(str(tmp_path / "resumed"))]
    # The export is a plain (merged) checkpoint.
    exported = tmp_path / "lora" / "hf_model"
    assert (exported / "model.safetensors").exists()
    from rlaif_jax import models

    assert not models.load(str(exported)).config.lora_rank


def test_lora_dpo_reference_is_the_base_and_gold_reward_moves(sft_model, tmp_path):
    config = config_defaults.load_config_file("dpo", "tiny")
    config.sft_first = False
    config.model.name = sft_model
    config.model.lora.update(LORA)
    config.eval.num_prompts = 32
    results = pipelines.run(config, str(tmp_path))
    assert results["start"]["kl"] == 0.0  # fresh adapters: the policy is its reference
    rows = read_metrics(str(tmp_path))
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.05
    # The implicit reward margin log(pi/ref) grows from ~0: the reference stayed the base while the adapters moved.
    assert abs(rows[0]["reward_margin"]) < 0.1 < rows[-1]["reward_margin"]


def test_lora_reward_model_trains_adapters_and_the_scalar_head(sft_model, tmp_path):
    config = config_defaults.load_config_file("reward_model", "tiny")
    config.model.name = sft_model
    config.model.lora.update(LORA)
    results = pipelines.run(config, str(tmp_path))
    rows = read_metrics(str(tmp_path))
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert results["eval_accuracy"] > 0.5
    assert os.path.exists(tmp_path / "hf_model" / "scalar_head.safetensors")


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_lora_online_rl_starts_at_zero_kl_and_trains(algorithm, tmp_path):
    config = config_defaults.load_config_file(algorithm, "tiny")
    config.sft.train.num_steps = 20
    config.train.num_steps = 8 if algorithm == "ppo" else 4
    config.rl.eval_prompts = 8
    config.model.lora.update(LORA)
    results = pipelines.run(config, str(tmp_path))
    rows = read_metrics(str(tmp_path))
    assert rows and rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert results["end"]["gold_reward"] != results["start"]["gold_reward"]
    assert all(np.isfinite(row["loss"]) for row in rows)


def test_lora_expert_iteration_fine_tunes_adapters(sft_model, tmp_path):
    config = config_defaults.load_config_file("expert_iteration", "tiny")
    config.model.name = sft_model
    config.sft_first = False
    config.model.lora.update(LORA)
    config.expert_iteration.iterations = 1
    results = pipelines.run(config, str(tmp_path))
    assert results["iterations"][0]["gold_reward"] > results["start"]["gold_reward"]
