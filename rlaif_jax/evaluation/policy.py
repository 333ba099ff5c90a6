"""Held-out evaluation of a policy during and after training: mean gold reward and KL to the reference of fresh
samples."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from rlaif_jax import distributed, sharding
from rlaif_jax.losses import seq2seq
from rlaif_jax.losses.logprobs import response_logprobs
from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.models.t5 import EncoderDecoder
from rlaif_jax.train import rollout as rollouts


def make_kl_fn(policy_module, prompt_length: int, temperature: float = 1.0):
    """Jitted: per-token log-ratio log π - log π_ref over the response of `[n, P + R]` sequences, `[n, R]`, both
    policies' logits divided by `temperature` (the distribution the samples were drawn from)."""

    # An encoder-decoder reads the prompt columns as its encoder input and the response as its targets.
    score = seq2seq.response_logprobs if isinstance(policy_module, EncoderDecoder) else response_logprobs

    def log_ratio(params, reference_params, tokens, attention_mask):
        logprobs = score(policy_module, params, tokens, attention_mask, prompt_length, temperature=temperature)
        ref_logprobs = score(
            policy_module, reference_params, tokens, attention_mask, prompt_length, temperature=temperature
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
    tokens, mask = sharding.place_batch((rollout.tokens, rollout.attention_mask), policy.mesh, policy.rules)
    with sharding.activate(policy.mesh, policy.rules):
        log_ratio = distributed.to_host(kl_fn(policy.params, reference_params, tokens, mask))
    kl = np.where(rollout.response_mask, log_ratio, 0.0).sum(axis=1)
    return {
        "gold_reward": float(rollout.scores.mean()),
        "kl": float(kl.mean()),
        "response_length": float(rollout.response_lengths.mean()),
        "example": rollout.completions[0],
    }
