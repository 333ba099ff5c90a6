"""REINFORCE with a learned baseline (RLAIF, Lee et al. 2023 App. F) and the RLOO baseline (Ahmadian et al. 2024).

RLAIF App. F: the reward comes on the final token only and γ = 1, so every token's return is the sequence's
`R = (1 - β)·r(y|x) - β·KL(π ‖ π_SFT)` (App. A.3 objective, β = 0.05 in App. G);
`L_PG = -Σ_t log π(A_t|X_t)·stopgrad(R - V(X))`, `L_V = (R - V(X))²`.
RLOO (Kool et al. 2019; Ahmadian et al. 2024 eq. 6): with k samples per prompt, sample i's baseline is the mean
reward of the other k - 1, so no value network is needed.

All math is float32 (inputs upcast); masked positions are replaced with `jnp.where` before use, so padding values
reach neither results nor gradients. Functions return per-sequence values; the caller reduces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _masked(values: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.where(mask.astype(bool), values.astype(jnp.float32), 0.0)


def rlaif_returns(score, logprobs, ref_logprobs, mask, *, beta: float) -> jax.Array:
    """Sequence return `(1 - β)·score - β·Σ_t (log π_t - log π_SFT,t)` (RLAIF App. A.3 / F), a constant.

    score: [batch] (the RM or d-RLAIF score of each response); logprobs, ref_logprobs, mask: [batch, seq] over
    response tokens. The KL is the sampled-sequence (k1) estimate. Returns float32 [batch], under stop_gradient.
    """
    sequence_kl = jnp.sum(_masked(logprobs, mask) - _masked(ref_logprobs, mask), axis=-1)
    returns = (1.0 - beta) * score.astype(jnp.float32) - beta * sequence_kl
    return jax.lax.stop_gradient(returns)


def reinforce_policy_loss(logprobs, advantages, mask) -> jax.Array:
    """REINFORCE loss `-stopgrad(A)·Σ_t log π(y_t | x, y_<t)` (RLAIF App. F with γ = 1; Williams 1992).

    logprobs, mask: [batch, seq] over response tokens; advantages: [batch] (e.g. R - V(x), or `rloo_advantages`).
    Returns float32 [batch].
    """
    sequence_logprob = jnp.sum(_masked(logprobs, mask), axis=-1)
    return -jax.lax.stop_gradient(advantages.astype(jnp.float32)) * sequence_logprob


def baseline_value_loss(values, returns) -> jax.Array:
    """Value-baseline regression `½·(V(x) - R)²` (RLAIF App. F's L_V, halved so its gradient is V - R).

    values: [batch] (the baseline's prediction per sequence); returns: [batch], a constant (stop_gradient).
    With the reward on the final token and γ = 1 every token's return is R, so a per-token baseline is this loss at
    each token. Returns float32 [batch].
    """
    returns = jax.lax.stop_gradient(returns.astype(jnp.float32))
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


def reinforce_loss_fn(policy_module, value_module, *, prompt_length, value_coef):
    """`loss_fn` of REINFORCE with a learned baseline (RLAIF App. F); params = {'policy', 'value'}.

    batch: tokens, attention_mask [n, P + R]; response_mask [n, R]; advantages = Z - V(x) and returns Z, [n]
    (from `rlaif_returns`). The baseline V(x) is the value head at the last prompt token.
    """
    from rlaif_jax.losses.logprobs import response_logprobs

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        mask = batch["response_mask"].astype(bool)
        tokens, attention_mask = batch["tokens"], batch["attention_mask"]
        logprobs, _ = response_logprobs(policy_module, params["policy"], tokens, attention_mask, prompt_length)
        pg = reinforce_policy_loss(logprobs, batch["advantages"], mask)
        scores = value_module.apply(
            {"params": params["value"]}, tokens, attention_mask=attention_mask, method=value_module.scalar
        )
        vl = baseline_value_loss(scores[:, prompt_length - 1], batch["returns"])
        count = jnp.float32(tokens.shape[0])
        loss_sum = jnp.sum(pg) + value_coef * jnp.sum(vl)
        return loss_sum, {
            "loss": (loss_sum, count),
            "policy_loss": (jnp.sum(pg), count),
            "value_loss": (jnp.sum(vl), count),
        }

    return loss_fn


def rloo_loss_fn(policy_module, *, prompt_length):
    """`loss_fn` of RLOO (Ahmadian et al. 2024): REINFORCE with the leave-one-out baseline already folded into
    batch['advantages'] [n] (see `rloo_advantages`); params = {'policy'}."""
    from rlaif_jax.losses.logprobs import response_logprobs

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        mask = batch["response_mask"].astype(bool)
        logprobs, _ = response_logprobs(
            policy_module, params["policy"], batch["tokens"], batch["attention_mask"], prompt_length
        )
        pg = reinforce_policy_loss(logprobs, batch["advantages"], mask)
        count = jnp.float32(batch["tokens"].shape[0])
        return jnp.sum(pg), {"loss": (jnp.sum(pg), count)}

    return loss_fn
