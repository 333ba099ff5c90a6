"""REINFORCE with a learned baseline (RLAIF, Lee et al. 2023 App. F) and the RLOO baseline (Ahmadian et al. 2024).

RLAIF App. F: the reward comes on the final token only and γ = 1, so every token's return is the sequence's
`Z = (1 - β)·r(y|x) - β·KL(π ‖ π_SFT)` (App. A.3 objective, β = 0.05 in App. G);
`L_PG = -Σ_t log π(A_t|X_t)·stopgrad(Z - V(X_t))`, `L_V = Σ_t (Z - V(X_t))²`, where X_t = (x, y_<t) is the state
before token t. That per-token baseline is `baseline='per_token'`. `baseline='prompt'` uses V(x) (the state before
the first response token) for every token: cheaper to fit and still unbiased, but it is not App. F's estimator, and
the two give different gradients (V(X_t) tracks how the partial response changed the expected return).
RLOO (Kool et al. 2019; Ahmadian et al. 2024 eq. 6): with k samples per prompt, sample i's baseline is the mean
reward of the other k - 1, so no value network is needed.

All math is float32 (inputs upcast); masked positions are replaced with `jnp.where` before use, so padding values
reach neither results nor gradients. Functions return per-sequence values; the caller reduces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import zero_masked


def rlaif_returns(score, logprobs, ref_logprobs, mask, *, beta: float) -> jax.Array:
    """Sequence return `(1 - β)·score - β·Σ_t (log π_t - log π_SFT,t)` (RLAIF App. A.3 / F), a constant.

    score: [batch] (the RM or d-RLAIF score of each response); logprobs, ref_logprobs, mask: [batch, seq] over
    response tokens. The KL is the sampled-sequence (k1) estimate. Returns float32 [batch], under stop_gradient.
    """
    sequence_kl = jnp.sum(zero_masked(logprobs, mask) - zero_masked(ref_logprobs, mask), axis=-1)
    returns = (1.0 - beta) * score.astype(jnp.float32) - beta * sequence_kl
    return jax.lax.stop_gradient(returns)


def reinforce_policy_loss(logprobs, advantages, mask, token_weights=None) -> jax.Array:
    """REINFORCE loss `-stopgrad(A)·Σ_t log π(y_t | x, y_<t)` (RLAIF App. F with γ = 1; Williams 1992).

    logprobs, mask: [batch, seq] over response tokens; advantages: [batch] (e.g. Z - V(x), or `rloo_advantages`),
    or [batch, seq] (per-token, e.g. Z - V(x, y_<t)): then the loss is `-Σ_t stopgrad(A_t)·log π(y_t | x, y_<t)`.
    token_weights: optional [batch, seq] constants w_t (truncated importance sampling): `-A·Σ_t w_t log π_t`.
    Returns float32 [batch].
    """
    advantages = jax.lax.stop_gradient(advantages.astype(jnp.float32))
    if token_weights is not None:
        logprobs = logprobs.astype(jnp.float32) * jax.lax.stop_gradient(token_weights.astype(jnp.float32))
    if advantages.ndim == 2:
        return -jnp.sum(zero_masked(advantages * logprobs.astype(jnp.float32), mask), axis=-1)
    sequence_logprob = jnp.sum(zero_masked(logprobs, mask), axis=-1)
    return -advantages * sequence_logprob


def baseline_value_loss(values, returns) -> jax.Array:
    """Value-baseline regression `½·(V(x) - R)²` (RLAIF App. F's L_V, halved so its gradient is V - R).

    values: [batch] (the baseline's prediction per sequence), or [batch, seq] (a per-token baseline V(x, y_<t));
    returns: [batch] (or broadcastable to `values`), a constant (stop_gradient). Returns float32 of values' shape.
    """
    returns = jax.lax.stop_gradient(returns.astype(jnp.float32))
    if values.ndim == 2 and returns.ndim == 1:
        returns = returns[:, None]
    return 0.5 * jnp.square(values.astype(jnp.float32) - returns)


def rloo_advantages(rewards, num_samples_per_prompt: int) -> jax.Array:
    """REINFORCE leave-one-out advantages `r_i - 1/(k-1)·Σ_{j≠i} r_j` within each prompt's k samples.

    rewards: [num_prompts * k], prompt-major (prompt 0's k samples first, then prompt 1's, ...).
    Returns float32 [num_prompts * k]. Raises ValueError if k < 2 or the length is not a multiple of k.
    """
    k = num_samples_per_prompt
    if k < 2:
        raise ValueError(f"rloo_advantages: num_samples_per_prompt must be >= 2 for a leave-one-out baseline, got {k}")
    if rewards.ndim != 1 or rewards.shape[0] % k:
        raise ValueError(
            f"rloo_advantages: rewards must be [num_prompts * {k}] (prompt-major), got shape {tuple(rewards.shape)}"
        )
    grouped = rewards.astype(jnp.float32).reshape(-1, k)
    others_mean = (jnp.sum(grouped, axis=-1, keepdims=True) - grouped) / (k - 1)
    return (grouped - others_mean).reshape(-1)


def reinforce_loss_fn(
    policy_module, value_module, *, prompt_length, value_coef, baseline="prompt", temperature=1.0, group_size=1
):
    """`loss_fn` of REINFORCE with a learned baseline (RLAIF App. F); params = {'policy', 'value'}.

    batch: tokens, attention_mask [n, P + R]; response_mask [n, R]; returns Z [n] (from `rlaif_returns`) and
    advantages: Z - V(x) [n] with `baseline='prompt'` (the value head at the last prompt token), or Z - V(x, y_<t)
    [n, R] with `baseline='per_token'` (the head before every response token; the value loss is then the mean
    over each response's tokens of ½(V(x, y_<t) - Z)²). Log-probs are taken at `temperature` (the rollout's); with
    `group_size` G > 1, groups of G consecutive rows share a prompt that runs once (`logprobs.shared_prefix_logits`).
    """
    from rlaif_jax.losses.logprobs import response_logprobs, response_values

    if baseline not in ("prompt", "per_token"):
        raise ValueError(f"baseline={baseline!r}; expected 'prompt' or 'per_token'")

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        mask = batch["response_mask"].astype(bool)
        tokens, attention_mask = batch["tokens"], batch["attention_mask"]
        logprobs = response_logprobs(
            policy_module,
            params["policy"],
            tokens,
            attention_mask,
            prompt_length,
            temperature=temperature,
            group_size=group_size,
        )
        pg = reinforce_policy_loss(logprobs, batch["advantages"], mask, batch.get("tis_weights"))
        values = response_values(value_module, params["value"], tokens, attention_mask, prompt_length)
        if baseline == "per_token":
            per_token = zero_masked(baseline_value_loss(values, batch["returns"]), mask)
            vl = jnp.sum(per_token, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1)
        else:
            vl = baseline_value_loss(values[:, 0], batch["returns"])
        count = jnp.float32(tokens.shape[0])
        loss_sum = jnp.sum(pg) + value_coef * jnp.sum(vl)
        return loss_sum, {
            "loss": (loss_sum, count),
            "policy_loss": (jnp.sum(pg), count),
            "value_loss": (jnp.sum(vl), count),
        }

    return loss_fn


def rloo_loss_fn(policy_module, *, prompt_length, temperature=1.0, group_size=1):
    """`loss_fn` of RLOO (Ahmadian et al. 2024): REINFORCE with the leave-one-out baseline already folded into
    batch['advantages'] [n] (see `rloo_advantages`); params = {'policy'}. Log-probs at `temperature`; `group_size`:
    as in `reinforce_loss_fn`."""
    from rlaif_jax.losses.logprobs import response_logprobs

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
        pg = reinforce_policy_loss(logprobs, batch["advantages"], mask, batch.get("tis_weights"))
        count = jnp.float32(batch["tokens"].shape[0])
        return jnp.sum(pg), {"loss": (jnp.sum(pg), count)}

    return loss_fn
