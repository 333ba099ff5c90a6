"""The GRPO family: GRPO, Dr. GRPO, DAPO and GSPO as one clipped-surrogate loss with four settings, plus truncated
importance sampling (TIS) against the sampler's log-probs.

GRPO (Shao et al. 2024, DeepSeekMath): no value model; the advantage of sample i of a prompt is
`(r_i - mean(r)) / (std(r) + 1e-4)` over the prompt's G samples (std unbiased, as TRL); every token of the sample
gets it. Per token `ℓ_t = -min(ρ_t·A, clip(ρ_t, 1 - ε_low, 1 + ε_high)·A) + β·k3_t`, `ρ_t = π_θ / π_old`,
`k3_t = π_ref/π_θ - log(π_ref/π_θ) - 1`; aggregated as the mean over each response's tokens, then over responses.
Dr. GRPO (Liu et al. 2025): no std in the advantage, and `Σ_t ℓ_t / L_max` per response (L_max = the generation cap)
instead of the per-response mean, so long responses are not down-weighted.
DAPO (Yu et al. 2025): ε_high > ε_low (clip-higher), token-level aggregation `Σ ℓ / Σ|y|` over the minibatch, and
(in the loop) dynamic sampling and overlong shaping: see `zero_variance_groups`, `overlong_penalty`.
GSPO (Zheng et al. 2025): one ratio per sequence, `s_i = exp(mean_t log ρ_t)` (length-normalised), clipped per
sequence; the per-token KL term and the per-response mean are GRPO's.

This is TRL 1.16 `GRPOTrainer._compute_loss` with loss_type grpo / dr_grpo / dapo and
`importance_sampling_level='sequence'` for GSPO (tests/losses/test_grpo_trl.py checks it).

Which distribution: `logprobs`, `old_logprobs` and `ref_logprobs` are all log-probs of the sampled tokens under the
full (untruncated) softmax at the rollout temperature: the trainer's recomputation, never the sampler's top-k/top-p
truncated distribution. The sampler's own log-probs enter only through the TIS weights
`min(exp(old_logprobs - sampler_logprobs), C)`, a constant per token.

All math is float32; masked positions are replaced with `jnp.where` before any nonlinearity, so padding never
reaches results or gradients. Per-token results are 0 where masked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import masked_sum, response_logprobs, zero_masked
from rlaif_jax.losses.ppo import kl_penalty

LOSSES = ("grpo", "dr_grpo", "dapo", "gspo")
AGGREGATIONS = {"grpo": "sequence_mean", "gspo": "sequence_mean", "dr_grpo": "constant_length", "dapo": "token_mean"}


def _grouped(rewards: jax.Array, group_size: int, name: str) -> jax.Array:
    if group_size < 2:
        raise ValueError(f"{name}: a group-normalised advantage needs group_size >= 2, got {group_size}")
    if rewards.ndim != 1 or rewards.shape[0] % group_size:
        raise ValueError(
            f"{name}: rewards must be [num_prompts * {group_size}] (prompt-major), got shape {tuple(rewards.shape)}"
        )
    return rewards.astype(jnp.float32).reshape(-1, group_size)


def group_advantages(rewards, group_size: int, *, scale: bool = True, eps: float = 1e-4) -> jax.Array:
    """GRPO's outcome advantages `(r_i - mean_g(r)) / (std_g(r) + eps)` (scale=False, Dr. GRPO: `r_i - mean_g(r)`).

    rewards: [num_prompts * G], prompt-major (prompt 0's G samples first). std is unbiased (÷ G - 1), as TRL's.
    Returns float32 [num_prompts * G]. Raises ValueError for G < 2 or a length that is not a multiple of G.
    """
    grouped = _grouped(rewards, group_size, "group_advantages")
    centred = grouped - jnp.mean(grouped, axis=-1, keepdims=True)
    if scale:
        std = jnp.sqrt(jnp.sum(jnp.square(centred), axis=-1, keepdims=True) / (group_size - 1))
        centred = centred / (std + eps)
    return centred.reshape(-1)


def zero_variance_groups(rewards, group_size: int) -> jax.Array:
    """DAPO's dynamic-sampling filter: True for each group whose G rewards are all equal (no learning signal).

    rewards: [num_prompts * G] prompt-major. Returns bool [num_prompts].
    """
    grouped = _grouped(rewards, group_size, "zero_variance_groups")
    return jnp.all(grouped == grouped[:, :1], axis=-1)


def overlong_penalty(lengths, *, max_length: int, cache_length: int) -> jax.Array:
    """DAPO's soft overlong punishment, added to the reward: 0 for `|y| <= L_max - L_cache`, then falling linearly
    to -1 at `|y| = L_max`: `((L_max - L_cache) - |y|) / L_cache`; -1 beyond L_max.

    lengths: [n] response lengths (tokens, the stop token included); max_length: L_max (the generation cap);
    cache_length: L_cache, the width of the penalty band (> 0). Returns float32 [n].
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(f"overlong_penalty: cache_length={cache_length} must be in (0, max_length={max_length}]")
    lengths = jnp.asarray(lengths, jnp.float32)
    threshold = max_length - cache_length
    penalty = jnp.minimum((threshold - lengths) / cache_length, 0.0)
    return jnp.where(lengths > max_length, -1.0, penalty)


def tis_weights(old_logprobs, sampler_logprobs, mask, *, cap: float) -> jax.Array:
    """Truncated importance sampling weights `min(π_old / π_sampler, C)` per token (a constant).

    old_logprobs: [n, R] the trainer's log-probs of the sampled tokens at rollout time; sampler_logprobs: [n, R] the
    sampler's own log-probs of the same tokens; cap: C > 0. Returns float32 [n, R], 0 where masked. With a sampler
    and trainer that agree (f32 here) the weights are 1 to within float error.
    """
    if cap <= 0:
        raise ValueError(f"tis_weights: cap must be > 0, got {cap}")
    log_ratio = zero_masked(old_logprobs, mask) - zero_masked(sampler_logprobs, mask)
    weights = jnp.minimum(jnp.exp(log_ratio), cap)
    return jax.lax.stop_gradient(jnp.where(mask.astype(bool), weights, 0.0))


def per_token_loss(
    logprobs,
    old_logprobs,
    ref_logprobs,
    advantages,
    mask,
    *,
    eps_low: float,
    eps_high: float,
    kl_coef: float,
    sequence_ratio: bool = False,
    token_weights=None,
):
    """The clipped surrogate plus the k3 KL term, per token.

    logprobs: [n, R] under π_θ (differentiated); old_logprobs, ref_logprobs: [n, R] constants (rollout policy,
    reference); advantages: [n] (every token of a response gets its response's) or [n, R]; mask: [n, R].
    sequence_ratio: GSPO's `s_i = exp(Σ_t log ρ_t / |y_i|)` for every token of response i instead of ρ_t.
    token_weights: optional [n, R] constants (TIS) multiplying the surrogate (not the KL term), as TRL does.
    Returns (loss [n, R], clipped [n, R] bool where the clipped term was taken, ratio [n, R]); 0/False/1 masked.
    """
    if eps_low < 0 or eps_high < eps_low:
        raise ValueError(f"per_token_loss: need 0 <= eps_low <= eps_high, got eps_low={eps_low}, eps_high={eps_high}")
    mask = mask.astype(bool)
    logprobs = zero_masked(logprobs, mask)
    log_ratio = logprobs - jax.lax.stop_gradient(zero_masked(old_logprobs, mask))
    if sequence_ratio:
        length = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1).astype(jnp.float32)
        log_ratio = jnp.broadcast_to(jnp.sum(log_ratio, axis=-1, keepdims=True) / length, log_ratio.shape)
    ratio = jnp.exp(log_ratio)
    advantages = jax.lax.stop_gradient(jnp.asarray(advantages, jnp.float32))
    if advantages.ndim == 1:
        advantages = advantages[:, None]
    unclipped = ratio * advantages
    clipped_term = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    loss = -jnp.minimum(unclipped, clipped_term)
    if token_weights is not None:
        loss = loss * jax.lax.stop_gradient(token_weights.astype(jnp.float32))
    if kl_coef:
        loss = loss + kl_coef * kl_penalty(logprobs, jax.lax.stop_gradient(ref_logprobs), kind="k3", mask=mask)
    return (
        jnp.where(mask, loss, 0.0),
        mask & (clipped_term < unclipped),
        jnp.where(mask, ratio, 1.0),
    )


def aggregate(loss, mask, aggregation: str, *, max_length: int) -> tuple[jax.Array, jax.Array]:
    """(loss_sum, count) of a per-token loss for `make_train_step`, whose objective is Σ loss_sum / Σ count.

    'sequence_mean' (GRPO, GSPO): Σ_i (Σ_t ℓ_it / |y_i|) over n responses. 'constant_length' (Dr. GRPO):
    Σ_i Σ_t ℓ_it / max_length over n. 'token_mean' (DAPO): Σ_it ℓ_it over Σ|y_i| tokens.
    loss, mask: [n, R]. Responses with an empty mask count in n (as TRL's mean does) and add 0.
    """
    mask = mask.astype(bool)
    token_sums = jnp.sum(jnp.where(mask, loss, 0.0), axis=-1)
    rows = jnp.float32(loss.shape[0])
    if aggregation == "sequence_mean":
        return jnp.sum(token_sums / jnp.maximum(jnp.sum(mask, axis=-1), 1)), rows
    if aggregation == "constant_length":
        return jnp.sum(token_sums) / max_length, rows
    if aggregation == "token_mean":
        return jnp.sum(token_sums), jnp.sum(mask.astype(jnp.float32))
    expected = sorted(set(AGGREGATIONS.values()))
    raise ValueError(f"aggregate: unknown aggregation {aggregation!r}; expected one of {expected}")


def grpo_loss_fn(
    policy_module,
    *,
    loss: str,
    prompt_length: int,
    max_new_tokens: int,
    eps_low,
    eps_high,
    kl_coef,
    temperature=1.0,
    group_size=1,
):
    """`loss_fn(params, batch, rng, frozen)` of GRPO / Dr. GRPO / DAPO / GSPO (`loss`); params = {'policy'}.

    batch: tokens, attention_mask [n, P + R]; response_mask, old_logprobs, ref_logprobs, optional tis_weights [n, R];
    advantages [n]. Log-probs are taken at `temperature` (the rollout's); with `group_size` G > 1 the rows come in
    groups of G sharing a prompt, which runs once (`logprobs.shared_prefix_logits`). Metrics: loss, policy_loss (the
    surrogate alone), kl (k3 per token), clip_fraction, ratio_max.
    """
    if loss not in LOSSES:
        raise ValueError(f"grpo_loss_fn: loss={loss!r}; expected one of {LOSSES}")
    aggregation = AGGREGATIONS[loss]

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        mask = batch["response_mask"].astype(bool)
        logprobs = response_logprobs(
            policy_module,
            params["policy"],
            batch["tokens"],
            batch["attention_mask"],
            prompt_length,
            temperature=temperature,
            group_size=group_size,
        )
        surrogate, clipped, ratio = per_token_loss(
            logprobs,
            batch["old_logprobs"],
            batch["ref_logprobs"],
            batch["advantages"],
            mask,
            eps_low=eps_low,
            eps_high=eps_high,
            kl_coef=0.0,  # added below, so that the surrogate alone is logged too
            sequence_ratio=loss == "gspo",
            token_weights=batch.get("tis_weights"),
        )
        k3 = kl_penalty(logprobs, jax.lax.stop_gradient(batch["ref_logprobs"]), kind="k3", mask=mask)
        loss_sum, count = aggregate(surrogate + kl_coef * k3, mask, aggregation, max_length=max_new_tokens)
        tokens = jnp.sum(mask.astype(jnp.float32))
        return loss_sum, {
            "loss": (loss_sum, count),
            "policy_loss": aggregate(surrogate, mask, aggregation, max_length=max_new_tokens),
            "kl_k3": (masked_sum(k3, mask), tokens),
            "clip_fraction": (masked_sum(clipped.astype(jnp.float32), mask), tokens),
            "ratio_max": (jnp.max(jnp.where(mask, ratio, 0.0)), jnp.float32(1.0)),
        }

    return loss_fn
