"""PPO for RLHF: GAE, per-token KL-shaped rewards, clipped policy and value losses, KL controllers.

InstructGPT (Ouyang et al. 2022, §3.5, App. C.4, eq. 2): reward `r_θ(x, y) - β log(π_RL(y|x) / π_SFT(y|x))`, the
KL paid per token, the RM score on the final token; β = 0.02, clip ratio 0.2, γ = 1. PPO-clip (Schulman et al. 2017,
eq. 7), GAE (Schulman et al. 2016, eq. 16), adaptive KL (Ziegler et al. 2019, §2.2), k1/k2/k3 KL estimators
(Schulman 2020, "Approximating KL divergence"). All math is float32; masked positions are replaced with `jnp.where`
before any nonlinearity, so padding (±1e4, inf) reaches neither results nor gradients. Per-token results: 0 if masked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import masked_mean, masked_sum, zero_masked
from rlaif_jax.losses.reward_model import last_token_index


def gae(rewards, values, mask, *, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16), scanned in reverse over the sequence.

    `δ_t = r_t + γ V_{t'} - V_t`, `A_t = δ_t + γλ A_{t'}`, t' the next *unmasked* position (V, A after the last: 0).
    rewards, values, mask: [batch, seq]. Returns (advantages, returns = advantages + values), float32 [batch, seq].
    """
    mask = mask.astype(bool)
    rewards, values = zero_masked(rewards, mask), zero_masked(values, mask)

    def step(carry, inputs):
        (next_value, next_advantage), (reward, value, is_token) = carry, inputs
        advantage = reward + gamma * next_value - value + gamma * lam * next_advantage
        carry = (jnp.where(is_token, value, next_value), jnp.where(is_token, advantage, next_advantage))
        return carry, jnp.where(is_token, advantage, 0.0)

    zeros = jnp.zeros(rewards.shape[:1], jnp.float32)
    _, advantages = jax.lax.scan(step, (zeros, zeros), (rewards.T, values.T, mask.T), reverse=True)
    return advantages.T, jnp.where(mask, advantages.T + values, 0.0)


def whiten(values, mask, *, shift_mean: bool = True) -> jax.Array:
    """`(x - mean) / sqrt(var + 1e-8)` over all masked-in elements of the batch (TRL `masked_whiten`).

    The variance is unbiased (Bessel's n - 1, as TRL's `masked_var(unbiased=True)`). With shift_mean=False the mean
    is added back (only the scale changes). values, mask: [batch, seq]. Returns float32 [batch, seq], 0 where masked.
    """
    mask = mask.astype(bool)
    values = zero_masked(values, mask)
    mean = masked_mean(values, mask)
    variance = masked_sum(jnp.square(values - mean), mask) / jnp.maximum(jnp.sum(mask) - 1.0, 1.0)
    whitened = (values - mean) * jax.lax.rsqrt(variance + 1e-8) + (0.0 if shift_mean else mean)
    return jnp.where(mask, whitened, 0.0)


def kl_penalty(logprobs, ref_logprobs, *, kind: str = "k1", mask=None) -> jax.Array:
    """Per-token estimate of KL(π ‖ π_ref) from sampled-token log-probs.

    kind: 'k1' = log π - log π_ref (InstructGPT eq. 2); 'k2' = ½(log π - log π_ref)²; 'k3' = (ρ - 1) - log ρ with
    log ρ = log π_ref - log π (always ≥ 0; log ρ clipped at 20); 'abs' = |log π - log π_ref|.
    logprobs, ref_logprobs: [batch, seq]; mask: optional [batch, seq]. Returns float32 [batch, seq] (0 where masked).
    """
    log_ratio = logprobs.astype(jnp.float32) - ref_logprobs.astype(jnp.float32)
    log_ratio = log_ratio if mask is None else zero_masked(log_ratio, mask)
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * jnp.square(log_ratio)
    if kind == "abs":
        return jnp.abs(log_ratio)
    if kind == "k3":
        log_rho = jnp.minimum(-log_ratio, 20.0)  # exp(20) ~ 5e8: k3 and its gradient stay finite for absurd ratios
        return jnp.expm1(log_rho) - log_rho
    raise ValueError(f"kl_penalty: unknown kind {kind!r}; expected one of 'k1', 'k2', 'k3', 'abs'")


def per_token_rewards(score, kl, mask, *, kl_coef) -> jax.Array:
    """InstructGPT eq. 2 as per-token rewards: `-β·KL_t` on every response token, plus the RM score on the last.

    score: [batch], the RM score of each response; kl: [batch, seq] (`kl_penalty`); mask: [batch, seq] over response
    tokens. The score goes on the last unmasked token (the EOS, never padding). Returns float32 [batch, seq].
    """
    mask = mask.astype(bool)
    rewards = -jnp.asarray(kl_coef, jnp.float32) * zero_masked(kl, mask)
    is_last = mask & (jnp.arange(mask.shape[-1])[None, :] == last_token_index(mask)[:, None])
    return rewards + jnp.where(is_last, score.astype(jnp.float32)[:, None], 0.0)


def policy_loss(logprobs, old_logprobs, advantages, mask, *, clip_ratio: float, token_weights=None):
    """PPO-clip (Schulman et al. 2017, eq. 7), negated for descent: `max(-A·ρ, -A·clip(ρ, 1-ε, 1+ε))`.

    logprobs, old_logprobs (rollout policy; a constant), advantages (a constant), mask: [batch, seq];
    token_weights: optional [batch, seq] constants multiplying each token's loss (truncated importance sampling).
    Returns (per_token_loss, clipped: where the clipped term was taken, ratio), each [batch, seq]; 0, False, 1 where
    masked.
    """
    mask = mask.astype(bool)
    ratio = jnp.exp(zero_masked(logprobs, mask) - jax.lax.stop_gradient(zero_masked(old_logprobs, mask)))
    advantages = jax.lax.stop_gradient(zero_masked(advantages, mask))
    unclipped_loss = -advantages * ratio
    clipped_loss = -advantages * jnp.clip(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    per_token_loss = jnp.maximum(unclipped_loss, clipped_loss)
    if token_weights is not None:
        per_token_loss = per_token_loss * jax.lax.stop_gradient(token_weights.astype(jnp.float32))
    per_token_loss = jnp.where(mask, per_token_loss, 0.0)
    return per_token_loss, mask & (clipped_loss > unclipped_loss), ratio


def value_loss(values, old_values, returns, mask, *, clip_range: float) -> jax.Array:
    """Clipped value loss `½·max((V - R)², (clip(V, V_old - ε, V_old + ε) - R)²)` (Ziegler et al. 2019; TRL).

    values, old_values, returns, mask: [batch, seq] (old_values, returns: constants). Returns float32 [batch, seq].
    """
    mask = mask.astype(bool)
    values = zero_masked(values, mask)
    old_values, returns = (jax.lax.stop_gradient(zero_masked(x, mask)) for x in (old_values, returns))
    clipped_values = old_values + jnp.clip(values - old_values, -clip_range, clip_range)
    loss = 0.5 * jnp.maximum(jnp.square(values - returns), jnp.square(clipped_values - returns))
    return jnp.where(mask, loss, 0.0)


def entropy_from_logits(logits) -> jax.Array:
    """Entropy `-Σ_v p_v log p_v` per position, float32, -inf logits allowed: [batch, seq, vocab] -> [batch, seq]."""
    logprobs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    probs = jnp.exp(logprobs)
    return -jnp.sum(probs * jnp.where(probs > 0, logprobs, 0.0), axis=-1)  # 0·log 0 = 0 for -inf logits


def explained_variance(values, returns, mask) -> jax.Array:
    """`1 - Var[R - V] / Var[R]` over masked-in tokens of values, returns, mask [batch, seq]: a float32 scalar.

    Variances are biased (÷ n); constant returns give 0 rather than NaN.
    """
    values, returns = zero_masked(values, mask), zero_masked(returns, mask)
    returns_variance = masked_mean(jnp.square(returns - masked_mean(returns, mask)), mask)
    residual = returns - values
    residual_variance = masked_mean(jnp.square(residual - masked_mean(residual, mask)), mask)
    safe_variance = jnp.where(returns_variance > 0, returns_variance, 1.0)
    return jnp.where(returns_variance > 0, 1.0 - residual_variance / safe_variance, 0.0)


def fixed_kl_coef(init: float) -> jax.Array:
    """The KL coefficient of a fixed controller (InstructGPT App. C.4: β = 0.02): float32 scalar, never updated."""
    return jnp.asarray(init, jnp.float32)


def adaptive_kl_update(kl_coef, measured_kl, *, target: float, horizon: float, num_steps: int) -> jax.Array:
    """Ziegler et al. 2019 §2.2: `e = clip(KL / target - 1, -0.2, 0.2)`, `β ← β·(1 + e·num_steps / horizon)`.

    kl_coef, measured_kl (the batch's mean sequence KL): scalars; num_steps: episodes since the last update.
    Returns the new float32 scalar coefficient.
    """
    error = jnp.clip(jnp.asarray(measured_kl, jnp.float32) / target - 1.0, -0.2, 0.2)
    return jnp.asarray(kl_coef, jnp.float32) * (1.0 + error * num_steps / horizon)


def ppo_loss_fn(
    policy_module,
    value_module,
    *,
    prompt_length,
    clip_ratio,
    value_clip,
    value_coef,
    entropy_coef,
    ptx_coef=0.0,
    temperature=1.0,
    group_size=1,
):
    """`loss_fn(params, batch, rng, frozen)` of PPO / PPO-ptx for `make_train_step`; params = {'policy', 'value'}.

    batch (rollout layout of `train.rollout`): tokens, attention_mask [n, P + R]; response_mask, old_logprobs,
    advantages, returns, old_values [n, R]; with ptx_coef > 0 also ptx_tokens / ptx_attention_mask / ptx_loss_mask;
    optionally tis_weights [n, R] (truncated importance sampling of the policy term).
    The PPO-ptx term γ·E[-log π(x_pretrain)] (InstructGPT eq. 2) enters as γ·(mean pretraining NLL) per RL token.
    Response log-probs are taken at `temperature` (the rollout's; old_logprobs must be too); the ptx NLL at 1.
    With `group_size` G > 1, groups of G consecutive rows share a prompt that runs once (the policy only).
    """
    from rlaif_jax.losses.logprobs import masked_sum, response_logprobs_and_entropy, response_values
    from rlaif_jax.losses.sft import model_token_nll

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        mask = batch["response_mask"].astype(bool)
        tokens, attention_mask = batch["tokens"], batch["attention_mask"]
        logprobs, entropy = response_logprobs_and_entropy(
            policy_module,
            params["policy"],
            tokens,
            attention_mask,
            prompt_length,
            temperature=temperature,
            group_size=group_size,
        )
        pg, clipped, ratio = policy_loss(
            logprobs,
            batch["old_logprobs"],
            batch["advantages"],
            mask,
            clip_ratio=clip_ratio,
            token_weights=batch.get("tis_weights"),
        )
        values = response_values(value_module, params["value"], tokens, attention_mask, prompt_length)
        vl = value_loss(values, batch["old_values"], batch["returns"], mask, clip_range=value_clip)
        count = jnp.sum(mask.astype(jnp.float32))
        loss_sum = masked_sum(pg + value_coef * vl - entropy_coef * entropy, mask)
        log_ratio = logprobs - batch["old_logprobs"]
        metrics = {
            "policy_loss": (masked_sum(pg, mask), count),
            "value_loss": (masked_sum(vl, mask), count),
            "entropy": (masked_sum(entropy, mask), count),
            "clip_fraction": (masked_sum(clipped.astype(jnp.float32), mask), count),
            "approx_kl_to_rollout": (masked_sum(0.5 * log_ratio**2, mask), count),
            "ratio_max": (jnp.max(jnp.where(mask, ratio, 0.0)), jnp.float32(1.0)),
        }
        if ptx_coef > 0:
            nll, ptx_mask, _ = model_token_nll(
                policy_module,
                params["policy"],
                batch["ptx_tokens"],
                batch["ptx_attention_mask"],
                batch["ptx_loss_mask"],
            )
            ptx_count = jnp.sum(ptx_mask.astype(jnp.float32))
            ptx_sum = masked_sum(nll, ptx_mask)
            loss_sum = loss_sum + ptx_coef * ptx_sum / jnp.maximum(ptx_count, 1.0) * count
            metrics["ptx_loss"] = (ptx_sum, ptx_count)
        metrics["loss"] = (loss_sum, count)
        return loss_sum, metrics

    return loss_fn
