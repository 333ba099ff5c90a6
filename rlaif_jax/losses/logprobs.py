"""Token log-probabilities and masked reductions shared by the loss files."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_logprobs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log p(targets) under `logits`, in float32 (log-softmax upcast: bf16 logits stay finite).

    logits: [batch, seq, vocab]; targets: int [batch, seq]. Returns [batch, seq].
    """
    logprobs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logprobs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]


def next_token_logprobs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """log p(tokens[:, t + 1] | tokens[:, : t + 1]) for t < seq - 1.

    logits: [batch, seq, vocab]; tokens: int [batch, seq]. Returns [batch, seq - 1]. The targets are shifted
    rather than the logits, so the [batch, seq, vocab] logits are never copied.
    """
    targets = jnp.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1)  # last column: a placeholder, dropped
    return token_logprobs(logits, targets)[:, :-1]


def zero_masked(values: jax.Array, mask: jax.Array) -> jax.Array:
    """`values` in float32 where `mask`, 0 elsewhere (any shape they share): padding, even +-inf or NaN, is replaced
    before any nonlinearity, so it reaches neither results nor gradients."""
    return jnp.where(mask.astype(bool), values.astype(jnp.float32), 0.0)


def masked_sum(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Sum of `values` where `mask` (any shape they share); padding values, even +-inf or NaN, never leak in."""
    return jnp.sum(jnp.where(mask.astype(bool), values, 0.0))


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `values` over `mask`; 0 when the mask is empty."""
    count = jnp.sum(mask.astype(jnp.float32))
    return masked_sum(values, mask) / jnp.maximum(count, 1.0)


def response_logprobs(
    module, params, tokens: jax.Array, attention_mask: jax.Array, prompt_length: int, *, temperature: float = 1.0
):
    """log π_T(response token j) for a `[n, P + R]` sequence whose response starts at `prompt_length` = P, where
    π_T = softmax(logits / temperature) is the distribution the sampler drew from at that temperature.

    Returns (logprobs [n, R], response logits / temperature [n, R, vocab]); token j is scored by the logits at
    P - 1 + j. Temperature 0 (greedy) is scored at 1.
    """
    logits = module.apply({"params": params}, tokens, attention_mask=attention_mask)
    response_logits = logits[:, prompt_length - 1 : -1]
    if temperature and temperature != 1.0:
        response_logits = response_logits.astype(jnp.float32) / temperature
    return token_logprobs(response_logits, tokens[:, prompt_length:]), response_logits


def response_values(value_module, params, tokens: jax.Array, attention_mask: jax.Array, prompt_length: int):
    """The scalar head before each response token: `[n, R]` (position P - 1 + j is the state before token j)."""
    scores = value_module.apply({"params": params}, tokens, attention_mask=attention_mask, method=value_module.scalar)
    return scores[:, prompt_length - 1 : -1]


def sequence_logprobs(
    module, params, tokens: jax.Array, attention_mask: jax.Array, loss_mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Summed log π of each sequence's target tokens and how many there are.

    tokens, attention_mask, loss_mask: [batch, seq]; loss_mask is 1 on the tokens to score (the response and its
    EOS; the SFT convention), so position t's logits score token t + 1 when loss_mask[t + 1] is 1.
    Returns (logps float32 [batch], num_tokens float32 [batch]); logps / num_tokens is the length-normalised score.
    """
    logits = module.apply({"params": params}, tokens, attention_mask=attention_mask)
    target_mask = loss_mask[:, 1:].astype(bool)
    logps = jnp.where(target_mask, next_token_logprobs(logits, tokens), 0.0)
    return jnp.sum(logps, axis=-1), jnp.sum(target_mask, axis=-1).astype(jnp.float32)
