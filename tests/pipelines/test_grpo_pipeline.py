"""configs/grpo.py on the shared RL loop beyond the toy task (the four losses' gold gains are asserted in
tests/experiments/test_rl_toy.py, with the sampler-trainer gap and the compile count): the verifiable arithmetic task
with a composed reward, TIS and the KL folded into the reward."""

import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.workdir import read_metrics


def test_arithmetic_task_with_a_composed_reward_tis_and_kl_in_reward(tmp_path, caplog):
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
    with caplog.at_level("WARNING"):
        results = pipelines.run(config, str(tmp_path))
    (row,) = read_metrics(str(tmp_path))
    # Random bytes never answer: every group's rewards are equal, which the loop warns of once, naming the step.
    assert row["zero_variance_groups"] == 4.0
    warned = [r.getMessage() for r in caplog.records if "groups have all" in r.getMessage()]
    assert warned == ["step 1: 4 of 4 groups have all 4 rewards equal: their advantages are 0"]
    assert row["sampler_gap_max"] <= 1e-5 and row["applied"] == 1.0
    assert abs(row["loss"] - row["policy_loss"]) < 1e-6  # no β·k3 in the loss
    assert row["reward/arithmetic"] == 0.0 and row["reward/format"] == 0.0  # random bytes never answer
    assert 0 <= row["unparsed_answers"] <= 16 and row["unparsed_prompts"] == 0
    assert results["end"]["judge"] == "arithmetic" and results["end"]["gold_reward"] == 0.0


def _grpo_rows(tmp_path, name, **rl_overrides):
    config = config_defaults.load_config_file("grpo", "tiny")
    config.sft_first = False
    config.rl.prompts_per_rollout, config.rl.minibatch_size, config.rl.eval_prompts = 8, 32, 4
    config.train.num_steps = 2  # two iterations of one optimizer step: the second rollout comes from trained params
    config.rl.update(rl_overrides)
    pipelines.run(config, str(tmp_path / name))
    return read_metrics(str(tmp_path / name))


def test_shared_prefix_and_sampler_logprobs_train_like_the_plain_passes(tmp_path):
    """Running each prompt once for its G samples (`rl.shared_prefix`, scoring and training) and taking π_old from
    the sampler (`rl.old_logprobs='sampler'`, one forward pass less) leave the run's figures unchanged up to float
    rounding: rewards, KL, losses and importance ratios of both iterations."""
    plain = _grpo_rows(tmp_path, "plain", shared_prefix=False)
    shared = _grpo_rows(tmp_path, "shared")
    sampler = _grpo_rows(tmp_path, "sampler", old_logprobs="sampler")
    assert len(plain) == len(shared) == len(sampler) == 2
    for a, b, c in zip(plain, shared, sampler):
        for key in ("reward_mean", "kl", "loss", "policy_loss", "kl_k3", "ratio_max", "response_length"):
            assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(a[key])), (key, a[key], b[key])
            assert abs(a[key] - c[key]) <= 1e-4 * max(1.0, abs(a[key])), (key, a[key], c[key])
        assert b["sampler_gap_max"] <= 1e-5
        assert "sampler_gap_max" not in c and "entropy" not in c  # nothing recomputed to compare with


def test_sampler_logprobs_refuse_tis(tmp_path):
    with pytest.raises(ValueError, match="tis_cap > 0 with config.rl.old_logprobs='sampler'"):
        _grpo_rows(tmp_path, "bad", old_logprobs="sampler", tis_cap=2.0)
    with pytest.raises(ValueError, match="config.rl.old_logprobs='recomputed'"):
        _grpo_rows(tmp_path, "bad2", old_logprobs="recomputed")
