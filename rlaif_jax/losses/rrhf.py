"""RRHF: rank responses to align language models with human feedback (Yuan et al. 2023, arXiv 2304.05302).

Each prompt carries K responses y_i with rewards r_i. The policy scores each by its length-normalised log-prob
`p_i = Σ_t log π(y_i,t | x, y_i,<t) / |y_i|` (the official `length_penalty` 1.0), and the loss is
`L = L_rank + L_ft`, `L_rank = Σ_{r_i < r_j} max(0, p_i - p_j)`, `L_ft = -mean_t log π(y_best,t)`, y_best the
highest-reward response.

Choices, checked against the official `GanjinZero/RRHF` train.py (`RRHFTrainer.rrhf_loss` / `sft_loss`):
- Ties do not count: a pair enters L_rank only when r_i < r_j strictly (official `rw_diff > 0`). No margin.
- L_ft averages over the best response's tokens. (The official `-logit_label[max_idx].mean()` averages over the
  whole padded row, whose prompt and padding positions hold zeros, so its value depends on the padded length; it
  equals ours when a row has no prompt or padding.) Among equal best rewards the first response wins (argmax).
- Official total: `rrhf_weight · L_rank + L_ft` (rrhf_weight 1 in train.sh); ours `rank_weight · L_rank +
  sft_weight · L_ft`, both 1 by default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import sequence_logprobs


def rrhf_loss(
    scores: jax.Array,
    rewards: jax.Array,
    valid: jax.Array,
    best_nll: jax.Array,
    *,
    sft_weight: float = 1.0,
    rank_weight: float = 1.0,
) -> jax.Array:
    """Per-prompt RRHF loss `rank_weight·Σ_{r_i < r_j} max(0, p_i - p_j) + sft_weight·best_nll`.

    scores: p_i, length-normalised log-probs `[batch, K]`; rewards: r_i `[batch, K]`; valid: bool `[batch, K]`
    (padding responses are never in a pair); best_nll: the mean token NLL of each prompt's highest-reward valid
    response `[batch]` (see `best_response_index`). Ties (r_i == r_j) are not pairs. Returns float32 `[batch]`.
    """
    valid = valid.astype(bool)
    scores = jnp.where(valid, scores.astype(jnp.float32), 0.0)
    rewards = jnp.where(valid, rewards.astype(jnp.float32), 0.0)
    # pair (i, j) with i worse than j: [batch, i, j]
    pair_mask = (rewards[:, :, None] < rewards[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    violations = jnp.where(pair_mask, jax.nn.relu(scores[:, :, None] - scores[:, None, :]), 0.0)
    rank_loss = jnp.sum(violations, axis=(1, 2))
    return rank_weight * rank_loss + sft_weight * best_nll.astype(jnp.float32)


def best_response_index(rewards: jax.Array, valid: jax.Array) -> jax.Array:
    """Index of the highest-reward valid response of each prompt (the first on ties): int32 `[batch]`.

    rewards, valid: `[batch, K]`. A prompt without a valid response gets index 0 (its loss is masked by the caller).
    """
    masked = jnp.where(valid.astype(bool), rewards.astype(jnp.float32), -jnp.inf)
    return jnp.argmax(masked, axis=-1).astype(jnp.int32)


def rrhf_loss_fn(module, *, sft_weight: float = 1.0, rank_weight: float = 1.0):
    """An RRHF `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)`, one batch element per prompt; the model
    runs once on all `[batch * K, seq]` responses.

    batch: tokens, attention_mask, loss_mask `[batch, K, seq]` (loss_mask = 1 on the response incl. EOS), rewards
      float `[batch, K]`, valid bool `[batch, K]`. The loss count is the number of prompts with a valid response.
    metrics: loss (sum, prompts), rank_loss and sft_nll (sum, prompts), pair_accuracy (p_j > p_i over the pairs
      r_i < r_j: sum, pairs), score (mean p over valid responses).
    """

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        for key in ("tokens", "attention_mask", "loss_mask", "rewards", "valid"):
            if key not in batch:
                raise KeyError(f"RRHF batch has no {key!r} column; it has {sorted(batch)}")
        num_prompts, num_responses, seq = batch["tokens"].shape
        logps, counts = sequence_logprobs(
            module,
            params,
            *(
                batch[key].reshape(num_prompts * num_responses, seq)
                for key in ("tokens", "attention_mask", "loss_mask")
            ),
        )
        logps = logps.reshape(num_prompts, num_responses)
        counts = jnp.maximum(counts.reshape(num_prompts, num_responses), 1.0)
        scores = logps / counts
        valid = batch["valid"].astype(bool)
        rewards = batch["rewards"].astype(jnp.float32)
        has_response = jnp.any(valid, axis=-1)
        best = best_response_index(rewards, valid)[:, None]
        best_nll = jnp.where(has_response, -jnp.take_along_axis(scores, best, axis=-1)[:, 0], 0.0)
        losses = rrhf_loss(scores, rewards, valid, best_nll, sft_weight=sft_weight, rank_weight=rank_weight)
        losses = jnp.where(has_response, losses, 0.0)
        count = jnp.sum(has_response).astype(jnp.float32)
        loss_sum = jnp.sum(losses)
        pair_mask = (rewards[:, :, None] < rewards[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        correct = pair_mask & (scores[:, None, :] > scores[:, :, None])
        rank_loss = rrhf_loss(scores, rewards, valid, jnp.zeros(num_prompts), sft_weight=0.0)
        return loss_sum, {
            "loss": (loss_sum, count),
            "rank_loss": (jnp.sum(jnp.where(has_response, rank_loss, 0.0)), count),
            "sft_nll": (jnp.sum(best_nll), count),
            "pair_accuracy": (jnp.sum(correct).astype(jnp.float32), jnp.sum(pair_mask).astype(jnp.float32)),
            "score": (jnp.sum(jnp.where(valid, scores, 0.0)), jnp.sum(valid).astype(jnp.float32)),
        }

    return loss_fn
