"""Token log-probabilities and masked reductions shared by the loss files."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlaif_jax.models.kv_cache import init_cache, repeat_rows


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
    module,
    params,
    tokens: jax.Array,
    attention_mask: jax.Array,
    prompt_length: int,
    *,
    temperature: float = 1.0,
    group_size: int = 1,
):
    """log π_T(response token j) for a `[n, P + R]` sequence whose response starts at `prompt_length` = P, where
    π_T = softmax(logits / temperature) is the distribution the sampler drew from at that temperature.

    With `group_size` = G > 1, rows come in groups of G consecutive rows that share one prompt (a rollout's
    prompt-major layout): each prompt runs once and its keys and values are broadcast to its G responses
    (`shared_prefix_logits`), the same values with about (P + G·R) / (G·(P + R)) of the work, gradients included.
    Only the R scored positions reach the LM head.

    Returns (logprobs [n, R], response logits / temperature [n, R, vocab]); token j is scored by the logits at
    P - 1 + j. Temperature 0 (greedy) is scored at 1.
    """
    if group_size > 1:
        response_logits = shared_prefix_logits(module, params, tokens, attention_mask, prompt_length, group_size)
    else:
        hidden = module.apply(
            {"params": params}, tokens[:, :-1], attention_mask=attention_mask[:, :-1], method=module.hidden_states
        )
        response_logits = module.apply(
            {"params": params}, hidden[:, prompt_length - 1 :], method=module.logits_from_hidden
        )
    if temperature and temperature != 1.0:
        response_logits = response_logits.astype(jnp.float32) / temperature
    return token_logprobs(response_logits, tokens[:, prompt_length:]), response_logits


def shared_prefix_logits(
    module, params, tokens: jax.Array, attention_mask: jax.Array, prompt_length: int, group_size: int
) -> jax.Array:
    """The logits scoring each response token, `[n, R, vocab]`, running each group's prompt once.

    tokens, attention_mask: [n, P + R], n = groups · `group_size`, the rows of a group consecutive and equal on
    their first P = `prompt_length` columns (checked on the host by `groups_share_prompts`). The prompts fill a
    KV cache `[n / G, P + R - 1]`, repeated G ways; the responses (minus their last token, which scores nothing)
    then run against it. Positions and masks are those of the full forward pass, so the values match it to float
    rounding; the repeat's backward sums each prompt's gradient over its G responses.
    """
    n, total = tokens.shape
    if n % group_size:
        raise ValueError(f"shared_prefix_logits: {n} rows are not whole groups of group_size={group_size}")
    variables = {"params": params}
    cache = init_cache(module.config, n // group_size, total - 1)
    last_prompt_logits, cache = module.apply(
        variables,
        tokens[::group_size, :prompt_length],
        cache,
        attention_mask=attention_mask[::group_size, :prompt_length],
        last_only=True,
        method=module.forward_with_cache,
    )
    response_logits, _ = module.apply(
        variables,
        tokens[:, prompt_length:-1],
        repeat_rows(cache, group_size),
        attention_mask=attention_mask[:, prompt_length:-1],
        method=module.forward_with_cache,
    )
    return jnp.concatenate([jnp.repeat(last_prompt_logits, group_size, axis=0), response_logits], axis=1)


def groups_share_prompts(tokens: np.ndarray, prompt_length: int, group_size: int) -> bool:
    """Host check that each `group_size` consecutive rows of `tokens [n, P + R]` hold the same prompt."""
    if group_size <= 1:
        return True
    if len(tokens) % group_size:
        return False
    prompts = np.asarray(tokens)[:, :prompt_length].reshape(-1, group_size, prompt_length)
    return bool(np.all(prompts == prompts[:, :1]))


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
