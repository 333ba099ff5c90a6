"""configs/grpo.py on the shared RL loop: each of GRPO, Dr. GRPO, DAPO and GSPO raises the toy task's held-out gold
reward from the shared SFT start, and every iteration's sampler-trainer log-prob gap stays at float error."""

import json

import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.workdir import read_metrics

LOSSES = ("grpo", "dr_grpo", "dapo", "gspo")


def grpo_config(loss: str, sft_model: str, **rl):
    config = config_defaults.load_config_file("grpo", f"tiny_{loss}")
    config.sft_first = False
    config.model.name = sft_model  # configs/sft.py:tiny, the same start as the config's own SFT stage
    config.train.num_steps = 60  # 15 iterations of 32 prompts x 4 samples (the config's full run: 30)
    config.rl.update(rl)
    return config


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_raises_toy_gold_with_sampler_and_trainer_agreeing(loss, sft_model, tmp_path, record_diff):
    results = pipelines.run(grpo_config(loss, sft_model), str(tmp_path))
    gain = record_diff(
        f"{loss}: gold gain over SFT", results["end"]["gold_reward"] - results["start"]["gold_reward"], 0.1, ">"
    )
    assert gain > 0.1, results
    assert record_diff(f"{loss}: KL to SFT, nats/seq", results["end"]["kl"], 8.0) < 8.0
    rows = read_metrics(str(tmp_path))
    assert len(rows) == 15 and rows[-1]["step"] == 60
    gap = record_diff(f"{loss}: max |sampler - trainer log p|", max(row["sampler_gap_max"] for row in rows), 1e-5)
    assert gap <= 1e-5  # f32 on CPU: the sampler's own log-probs equal the trainer's recomputation
    assert rows[-1]["compiles"] == rows[1]["compiles"]  # fixed shapes: nothing compiles after the first iterations
    assert json.loads((tmp_path / "eval_end.json").read_text())["gold_reward"] == results["end"]["gold_reward"]
    if loss == "dapo":
        assert "kl_k3" in rows[0] and all(row["groups_dropped"] >= 0 for row in rows)
        assert max(row["groups_dropped"] for row in rows) > 0  # late rollouts have all-correct groups, dropped


def test_arithmetic_task_with_a_composed_reward_tis_and_kl_in_reward(tmp_path):
    """The verifiable task end to end on the random-init byte model: prompts from data/arithmetic.py, the reward
    'arithmetic + 0.1*format' (a weighted sum of rules), exact-answer accuracy as the held-out judge, and the
    reward's term means and unparsed-answer count in the metrics row; with truncated importance sampling on and the
    KL folded into the reward (so the loss has no β·k3 term)."""
    config = config_defaults.load_config_file("grpo", "tiny")
    config.sft_first = False
    config.rl.prompts = config_defaults.prompts("arithmetic")
    config.rl.reward, config.rl.gold_reward = "arithmetic + 0.1*format", "arithmetic"
    config.rl.max_prompt_length, config.rl.max_new_tokens = 192, 8
    config.rl.prompts_per_rollout, config.rl.minibatch_size, config.rl.eval_prompts = 4, 16, 4
    config.rl.tis_cap, config.rl.kl_in_reward = 2.0, True
    config.train.num_steps = 1
    results = pipelines.run(config, str(tmp_path))
    (row,) = read_metrics(str(tmp_path))
    assert row["sampler_gap_max"] <= 1e-5 and row["applied"] == 1.0
    assert abs(row["loss"] - row["policy_loss"]) < 1e-6  # no β·k3 in the loss
    assert row["reward/arithmetic"] == 0.0 and row["reward/format"] == 0.0  # random bytes never answer
    assert 0 <= row["unparsed_answers"] <= 16 and row["unparsed_prompts"] == 0
    assert results["end"]["judge"] == "arithmetic" and results["end"]["gold_reward"] == 0.0
