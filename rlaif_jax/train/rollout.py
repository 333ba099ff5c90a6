"""On-policy rollouts: sample responses, score them, and lay them out as one batch of arrays for the train step.

Layout of a rollout of n sequences, prompt bucket P, response length R (the sampler's own layout, so the training
forward pass sees exactly the positions the sampler saw):
  tokens          int32 [n, P + R]   left-padded prompt, then the response (pad after its stop token)
  attention_mask  bool  [n, P + R]
  response_mask   bool  [n, R]       generated tokens, the stop token included
Per-response-token arrays are [n, R]; token j of the response is scored by the logits at position P - 1 + j.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from rlaif_jax import sampling
from rlaif_jax.inference import seq2seq
from rlaif_jax.losses.logprobs import response_logprobs, response_values  # noqa: F401  (re-exported)
from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.models.t5 import EncoderDecoder

RewardFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


@dataclasses.dataclass
class Rollout:
    """Host arrays of one rollout (see the module docstring) plus the texts and rewards."""

    tokens: np.ndarray
    attention_mask: np.ndarray
    response_mask: np.ndarray
    sampler_logprobs: np.ndarray  # [n, R] log-probs of the sampled tokens under the sampling policy at T = 1
    sampling_logprobs: np.ndarray  # [n, R] the same under the distribution sampled from (temperature applied)
    scores: np.ndarray  # [n] reward-function output
    prompts: list[str]
    completions: list[str]
    prompt_length: int  # P

    @property
    def response_lengths(self) -> np.ndarray:
        """Generated tokens per sequence, `[n]`."""
        return self.response_mask.sum(axis=1)


def sample_rollout(
    policy: LanguageModel,
    prompt_texts: Sequence[str],
    prompt_ids: Sequence[Sequence[int]],
    reward_fn: RewardFn,
    *,
    rng: jax.Array,
    max_new_tokens: int,
    temperature: float,
    num_samples: int = 1,
    prompt_length: int | None = None,
) -> Rollout:
    """Samples `num_samples` responses per prompt (prompt-major order) and scores them with `reward_fn`.

    `prompt_length` fixes P (prompts are left-padded to it) so that every rollout has the same shapes and the
    train step compiles once; default: the longest prompt.
    """
    longest = max(len(ids) for ids in prompt_ids)
    prompt_length = longest if prompt_length is None else prompt_length
    if longest > prompt_length:
        raise ValueError(f"a prompt has {longest} tokens; the rollout layout allows prompt_length={prompt_length}")
    n = len(prompt_ids) * num_samples
    pad_id = policy.config.pad_token_id if policy.config.pad_token_id is not None else 0
    tokens = np.full((n, prompt_length + max_new_tokens), pad_id, np.int32)
    attention_mask = np.zeros(tokens.shape, bool)
    for row in range(n):
        ids = prompt_ids[row // num_samples]
        tokens[row, prompt_length - len(ids) : prompt_length] = ids
        attention_mask[row, prompt_length - len(ids) : prompt_length] = True
    if isinstance(policy.module, EncoderDecoder):  # the prompt is the encoder's input, read once per row
        generated = seq2seq.generate(
            policy,
            tokens[:, :prompt_length],
            attention_mask[:, :prompt_length],
            max_new_tokens=max_new_tokens,
            rng=rng,
            temperature=temperature,
        )
    else:
        generated = sampling.generate(
            policy, prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, num_samples=num_samples, rng=rng
        )
    response_mask = np.arange(max_new_tokens)[None, :] < generated.lengths[:, None]
    tokens[:, prompt_length:] = generated.tokens
    attention_mask[:, prompt_length:] = response_mask
    texts = [prompt_texts[row // num_samples] for row in range(n)]
    scores = np.asarray(reward_fn(texts, generated.texts), np.float32)
    if scores.shape != (n,):
        raise ValueError(f"reward function returned shape {scores.shape}; expected ({n},)")
    return Rollout(
        tokens=tokens,
        attention_mask=attention_mask,
        response_mask=response_mask,
        sampler_logprobs=np.where(response_mask, generated.logprobs, 0.0).astype(np.float32),
        sampling_logprobs=np.where(response_mask, generated.sampling_logprobs, 0.0).astype(np.float32),
        scores=scores,
        prompts=texts,
        completions=list(generated.texts),
        prompt_length=prompt_length,
    )


def truncated_responses(rollout: Rollout, stop_tokens) -> np.ndarray:
    """bool [n]: responses cut at the generation cap R without a stop token (DAPO's "overlong" samples)."""
    full = rollout.response_lengths == rollout.response_mask.shape[1]
    last = rollout.tokens[:, -1]
    return full & ~np.isin(last, np.asarray(list(stop_tokens), np.int64))


def gather_rows(arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of every `[n, ...]` array (a minibatch)."""
    return {name: value[rows] for name, value in arrays.items()}
