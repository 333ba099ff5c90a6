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
) -> jax.Array:
    """log π_T(response token j) `[n, R]` for a `[n, P + R]` sequence whose response starts at `prompt_length` = P,
    where π_T = softmax(logits / temperature) is the distribution the sampler drew from at that temperature.
    Token j is scored by the logits at P - 1 + j; temperature 0 (greedy) is scored at 1.

    With `group_size` = G > 1, rows come in groups of G consecutive rows that share one prompt (a rollout's
    prompt-major layout): each prompt runs once and its keys and values are broadcast to its G responses
    (`shared_prefix_hidden`), the same values with about (P + G·R) / (G·(P + R)) of the work, gradients included.
    Only the R scored positions reach the LM head, and it runs in vocabulary chunks (`Transformer.head_logprobs`).
    """
    return response_head(module, params, tokens, attention_mask, prompt_length, temperature, group_size)["logprobs"]


def response_logprobs_and_entropy(
    module,
    params,
    tokens: jax.Array,
    attention_mask: jax.Array,
    prompt_length: int,
    *,
    temperature: float = 1.0,
    group_size: int = 1,
) -> tuple[jax.Array, jax.Array]:
    """`response_logprobs` and the entropy of π_T before each response token, both `[n, R]`."""
    stats = response_head(
        module, params, tokens, attention_mask, prompt_length, temperature, group_size, with_entropy=True
    )
    return stats["logprobs"], stats["entropy"]


def response_head(
    module, params, tokens, attention_mask, prompt_length, temperature, group_size, with_entropy=False
) -> dict[str, jax.Array]:
    """`Transformer.head_logprobs` over the response positions of `tokens [n, P + R]`: {'logprobs', 'is_argmax',
    ('entropy')}, each `[n, R]` (see `response_logprobs`)."""
    if group_size > 1:
        hidden = shared_prefix_hidden(module, params, tokens, attention_mask, prompt_length, group_size)
    else:
        # The whole (even-length) sequence runs, the last position unused: cuDNN's flash attention needs even lengths.
        hidden = module.apply({"params": params}, tokens, attention_mask=attention_mask, method=module.hidden_states)[
            :, prompt_length - 1 : -1
        ]
    return module.apply(
        {"params": params},
        hidden,
        tokens[:, prompt_length:],
        temperature=temperature or 1.0,
        with_entropy=with_entropy,
        method=module.head_logprobs,
    )


def shared_prefix_hidden(
    module, params, tokens: jax.Array, attention_mask: jax.Array, prompt_length: int, group_size: int
) -> jax.Array:
    """The final hidden states before each response token, `[n, R, hidden]`, running each group's prompt once.

    tokens, attention_mask: [n, P + R], n = groups · `group_size`, the rows of a group consecutive and equal on
    their first P = `prompt_length` columns (checked on the host by `groups_share_prompts`). The prompts fill a
    KV cache `[n / G, P + R - 1]`, repeated G ways; the responses (minus their last token, which scores nothing)
    then run against it. Positions and masks are those of the full forward pass, so the values match it to float
    rounding; the repeat's backward sums each prompt's gradient over its G responses.
    """
    n, total = tokens.shape
    if n % group_size:
        raise ValueError(f"shared_prefix_hidden: {n} rows are not whole groups of group_size={group_size}")
    variables = {"params": params}
    cache = init_cache(module.config, n // group_size, total - 1)
    prompt_hidden, cache = module.apply(
        variables,
        tokens[::group_size, :prompt_length],
        cache,
        attention_mask=attention_mask[::group_size, :prompt_length],
        method=module.hidden_with_cache,
    )
    response_hidden, _ = module.apply(
        variables,
        tokens[:, prompt_length:-1],
        repeat_rows(cache, group_size),
        attention_mask=attention_mask[:, prompt_length:-1],
        method=module.hidden_with_cache,
    )
    last_prompt_hidden = jnp.repeat(prompt_hidden[:, -1:], group_size, axis=0)
    return jnp.concatenate([last_prompt_hidden, response_hidden], axis=1)


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


def dropout_rngs(rng: jax.Array | None) -> dict[str, jax.Array]:
    """`apply(..., rngs=...)` of a training pass: LoRA dropout (`ModelConfig.lora_dropout`) draws from `rng`."""
    return {} if rng is None else {"dropout": rng}


def next_token_head(
    module, params, tokens: jax.Array, attention_mask: jax.Array, dropout_rng: jax.Array | None = None
) -> dict[str, jax.Array]:
    """log π(tokens[:, t + 1] | tokens[:, : t + 1]) for t < seq - 1 by the chunked LM head (no [batch, seq, vocab]
    logits): {'logprobs', 'is_argmax'}, each [batch, seq - 1]. tokens, attention_mask: [batch, seq].
    `dropout_rng`: a training pass (LoRA dropout on); None: deterministic."""
    hidden = module.apply(
        {"params": params},
        tokens,
        attention_mask=attention_mask,
        method=module.hidden_states,
        rngs=dropout_rngs(dropout_rng),
    )
    return module.apply({"params": params}, hidden[:, :-1], tokens[:, 1:], method=module.head_logprobs)


def sequence_logprobs(
    module, params, tokens: jax.Array, attention_mask: jax.Array, loss_mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Summed log π of each sequence's target tokens and how many there are.

    tokens, attention_mask, loss_mask: [batch, seq]; loss_mask is 1 on the tokens to score (the response and its
    EOS; the SFT convention), so position t's logits score token t + 1 when loss_mask[t + 1] is 1.
    Returns (logps float32 [batch], num_tokens float32 [batch]); logps / num_tokens is the length-normalised score.
    """
    target_mask = loss_mask[:, 1:].astype(bool)
    logps = jnp.where(target_mask, next_token_head(module, params, tokens, attention_mask)["logprobs"], 0.0)
    return jnp.sum(logps, axis=-1), jnp.sum(target_mask, axis=-1).astype(jnp.float32)
