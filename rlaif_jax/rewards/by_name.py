"""The reward function a config names: a gold judge, a trained reward model, or an LLM's d-RLAIF score."""

from __future__ import annotations

from rlaif_jax.feedback.d_rlaif import PREFIX as D_RLAIF_PREFIX
from rlaif_jax.feedback.d_rlaif import load_d_rlaif_reward
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.rewards.reward_model import PREFIX as REWARD_MODEL_PREFIX
from rlaif_jax.rewards.reward_model import RewardModelReward


def make_reward_fn(name: str, *, max_length: int, use_chat_template: bool):
    """The reward function `name` names: a gold reward ('toy', 'sentiment') or 'reward_model:RM_WORKDIR' (a trained
    reward model scoring sequences of up to `max_length` tokens) or 'd_rlaif:[TEMPLATE:]MODEL' (an LLM's 1-10 score,
    feedback/d_rlaif.py). Returns `fn(prompts, completions) -> [n]`."""
    if name.startswith(D_RLAIF_PREFIX):
        return load_d_rlaif_reward(name[len(D_RLAIF_PREFIX) :])
    if name.startswith(REWARD_MODEL_PREFIX):
        return RewardModelReward(
            name[len(REWARD_MODEL_PREFIX) :], max_length=max_length, use_chat_template=use_chat_template
        )
    return make_gold_reward(name)
