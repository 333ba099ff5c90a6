"""What every policy-training job shares: task prompts, reward functions by name, and the held-out evaluation
(mean gold reward and KL to the reference of fresh samples)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from rlaif_jax.data.sentiment import review_prompts, sentiment_prompts
from rlaif_jax.data.tokenize import encode_prompt
from rlaif_jax.data.toy import toy_rows
from rlaif_jax.feedback.d_rlaif import PREFIX as D_RLAIF_PREFIX
from rlaif_jax.feedback.d_rlaif import load_d_rlaif_reward
from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.rewards.reward_model import PREFIX as REWARD_MODEL_PREFIX
from rlaif_jax.rewards.reward_model import RewardModelReward
from rlaif_jax.train import rollout as rollouts

TASKS = ("toy", "sentiment", "reviews")


def task_prompts(task: str, split: str, seed: int, num_prompts: int = 0) -> list[str]:
    """Prompt texts of a task: 'toy' (letters; 'train' and 'held_out' draw different seeds), 'sentiment'
    (SmolLM2 movie reviews) or 'reviews' (the tiny-model sentiment task; data/sentiment.py). With `num_prompts`
    > 0 the first `num_prompts`, cycling through the split again when it is shorter (the 8 held-out `reviews`
    titles give 128 samples at 128); 0 = the split once."""
    if task == "toy":
        prompts = [row["prompt"] for row in toy_rows(256, seed=seed + (0 if split == "train" else 10_000))]
    elif task == "sentiment":
        prompts = sentiment_prompts(split)
    elif task == "reviews":
        prompts = review_prompts(split)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if num_prompts <= 0:
        return prompts
    return [prompts[i % len(prompts)] for i in range(num_prompts)]


def encode_prompts(
    tokenizer, texts: Sequence[str], *, use_chat_template: bool, max_prompt_length: int, source: str
) -> list[list[int]]:
    """Token ids of each prompt; raises naming `source` and the prompt index if one exceeds `max_prompt_length`."""
    ids = [encode_prompt(tokenizer, text, use_chat_template=use_chat_template) for text in texts]
    for index, prompt in enumerate(ids):
        if len(prompt) > max_prompt_length:
            raise ValueError(
                f"{source} prompt {index} has {len(prompt)} tokens > max_prompt_length={max_prompt_length}"
            )
    return ids


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


def make_kl_fn(policy_module, prompt_length: int):
    """Jitted: per-token log-ratio log π - log π_ref over the response of `[n, P + R]` sequences, `[n, R]`."""

    def log_ratio(params, reference_params, tokens, attention_mask):
        logprobs, _ = rollouts.response_logprobs(policy_module, params, tokens, attention_mask, prompt_length)
        ref_logprobs, _ = rollouts.response_logprobs(
            policy_module, reference_params, tokens, attention_mask, prompt_length
        )
        return logprobs - ref_logprobs

    return jax.jit(log_ratio)


def evaluate_policy(
    policy: LanguageModel,
    reference_params,
    prompts: Sequence[str],
    prompt_ids: Sequence[Sequence[int]],
    gold_fn,
    *,
    max_new_tokens: int,
    temperature: float,
    prompt_length: int,
    kl_fn,
    rng: jax.Array,
) -> dict:
    """One sample per held-out prompt: mean gold reward, mean sequence KL(policy || reference) (the sum over
    response tokens of log π - log π_ref at the sampled tokens), mean response length and one example."""
    rollout = rollouts.sample_rollout(
        policy,
        prompts,
        prompt_ids,
        gold_fn,
        rng=rng,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        prompt_length=prompt_length,
    )
    log_ratio = np.asarray(kl_fn(policy.params, reference_params, rollout.tokens, rollout.attention_mask))
    kl = np.where(rollout.response_mask, log_ratio, 0.0).sum(axis=1)
    return {
        "gold_reward": float(rollout.scores.mean()),
        "kl": float(kl.mean()),
        "response_length": float(rollout.response_lengths.mean()),
        "example": rollout.completions[0],
    }
