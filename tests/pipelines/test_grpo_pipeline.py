"""configs/grpo.py on the shared RL loop beyond the toy task (the four losses' gold gains are asserted in
tests/experiments/test_rl_toy.py, with the sampler-trainer gap and the compile count): the verifiable arithmetic task
with a composed reward, TIS and the KL folded into the reward."""

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.workdir import read_metrics


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
