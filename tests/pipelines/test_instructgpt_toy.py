"""InstructGPT end to end on the toy task: a reward model trained on preference pairs becomes PPO's reward."""

import json

import numpy as np
import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.rewards.gold import toy_rewards
from rlaif_jax.rewards.reward_model import RewardModelReward


@pytest.mark.slow
def test_ppo_on_a_learned_reward_raises_the_gold_reward(tmp_path):
    rm_config = config_defaults.load_config_file("reward_model", "tiny")
    rm_dir = tmp_path / "rm"
    pipelines.run(rm_config, str(rm_dir))
    reward = RewardModelReward(str(rm_dir), max_length=32, use_chat_template=False)
    prompts = ["letter: c"] * 3
    completions = ["cccccc", "ccchab", "abdefg"]
    scores = reward(prompts, completions)
    assert scores[0] > scores[1] > scores[2], scores  # agrees with the gold ordering
    assert np.argsort(scores).tolist() == np.argsort(toy_rewards(prompts, completions)).tolist()

    ppo_config = config_defaults.load_config_file("ppo", "tiny")
    ppo_config.rl.reward = f"reward_model:{rm_dir}"
    results = pipelines.run(ppo_config, str(tmp_path / "ppo"))
    assert results["end"]["gold_reward"] > results["start"]["gold_reward"] + 0.2, results
    assert json.loads((tmp_path / "ppo" / "config.json").read_text())["rl"]["reward"].startswith("reward_model:")
