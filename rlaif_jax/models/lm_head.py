"""The LM head's log-probabilities in vocabulary chunks: no `[batch, seq, vocab]` float32 logits are ever built.

A loss needs, per position, log π(target), sometimes the entropy of π and whether the target is the argmax; none
needs the logits themselves. `chunked_head_stats` runs the head over `num_chunks` slices of the vocabulary in a
`lax.scan` and keeps an online log-sum-exp (the running max, the rescaled sum of exponentials, and for the entropy
the rescaled sum of p·(logit - max)). The scan body is rematerialised, so the backward pass recomputes each chunk's
logits instead of storing them: peak memory holds `[batch, seq, vocab / num_chunks]` logits and one slice of the head.

Chunks are strided (chunk i holds vocabulary ids i, i + k, i + 2k, ...), so a head sharded along the vocabulary
(the `tensor` mesh axis) is sliced locally on every shard, and an FSDP-sharded head is all-gathered one slice at a
time rather than whole.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def num_vocab_chunks(vocab_size: int, chunk_size: int) -> int:
    """How many strided chunks cover `vocab_size` with at most about `chunk_size` ids each (0 = one chunk).

    The count divides `vocab_size` when a divisor lies within 2x of the ideal count (real vocabularies do); else the
    vocabulary is padded up to a multiple of the ideal count (`chunked_head_stats` masks the padding)."""
    if chunk_size <= 0 or vocab_size <= chunk_size:
        return 1
    ideal = math.ceil(vocab_size / chunk_size)
    for count in range(ideal, 2 * ideal + 1):
        if vocab_size % count == 0:
            return count
    return ideal


def chunked_head_stats(
    hidden: jax.Array,
    head: jax.Array,
    targets: jax.Array,
    *,
    vocab_axis: int,
    chunk_size: int,
    temperature: float = 1.0,
    with_entropy: bool = False,
    constrain=None,
) -> dict[str, jax.Array]:
    """Per-position statistics of softmax(hidden @ head / temperature) without the full logits.

    hidden: [batch, seq, hidden] (compute dtype); head: [vocab, hidden] (`vocab_axis=0`, a tied embedding) or
    [hidden, vocab] (`vocab_axis=1`), any dtype (each slice is cast to hidden's dtype); targets: int [batch, seq].
    `constrain(logits)` (optional) puts a sharding constraint on each chunk's `[batch, seq, chunk]` logits.
    Matmuls accumulate in float32 and the statistics are float32.

    Returns {'logprobs': log π(target) [batch, seq], 'is_argmax': bool [batch, seq] (the target's logit is the
    largest), and with `with_entropy` 'entropy': H(π) [batch, seq]}.
    """
    vocab_size = head.shape[vocab_axis]
    num_chunks = num_vocab_chunks(vocab_size, chunk_size)
    padded = -(-vocab_size // num_chunks) * num_chunks
    if padded != vocab_size:
        pad = [(0, 0), (0, 0)]
        pad[vocab_axis] = (0, padded - vocab_size)
        head = jnp.pad(head, pad)
    chunk_width = padded // num_chunks
    # id = column * num_chunks + chunk: chunk i is the strided slice [:, i] of a [chunk_width, num_chunks] layout.
    if vocab_axis == 0:
        head = head.reshape(chunk_width, num_chunks, head.shape[1])
    else:
        head = head.reshape(head.shape[0], chunk_width, num_chunks)
    targets = targets.astype(jnp.int32)
    target_chunk, target_column = targets % num_chunks, targets // num_chunks
    columns = jnp.arange(chunk_width, dtype=jnp.int32)
    scale = 1.0 / temperature if temperature and temperature != 1.0 else None

    def chunk_logits(index):
        if vocab_axis == 0:
            weight = jax.lax.dynamic_index_in_dim(head, index, axis=1, keepdims=False).astype(hidden.dtype)
            logits = jnp.einsum("bsd,vd->bsv", hidden, weight, preferred_element_type=jnp.float32)
        else:
            weight = jax.lax.dynamic_index_in_dim(head, index, axis=2, keepdims=False).astype(hidden.dtype)
            logits = jnp.einsum("bsd,dv->bsv", hidden, weight, preferred_element_type=jnp.float32)
        if constrain is not None:
            logits = constrain(logits)
        if scale is not None:
            logits = logits * scale
        if padded != vocab_size:
            logits = jnp.where(columns * num_chunks + index < vocab_size, logits, -jnp.inf)
        return logits

    def body(carry, index):
        # Sums are kept relative to the running max (as log_softmax does): exact shifts keep large logits precise.
        running_max, total, weighted, target_logit = carry
        logits = chunk_logits(index)
        new_max = jax.lax.stop_gradient(jnp.maximum(running_max, jnp.max(logits, axis=-1)))
        rescale = jnp.exp(running_max - new_max)
        shifted = logits - new_max[..., None]
        exps = jnp.exp(shifted)
        if with_entropy:  # Σ exp(l - m)·(l - m), moved from the old max to the new one
            moved = jnp.where(total > 0, weighted + (running_max - new_max) * total, 0.0)
            weighted = rescale * moved + jnp.sum(exps * jnp.where(exps > 0, shifted, 0.0), axis=-1)
        total = total * rescale + jnp.sum(exps, axis=-1)
        hit = (columns == target_column[..., None]) & (target_chunk == index)[..., None]
        target_logit = target_logit + jnp.sum(jnp.where(hit, logits, 0.0), axis=-1)
        return (new_max, total, weighted, target_logit), None

    shape = targets.shape
    zeros = jnp.zeros(shape, jnp.float32)
    init = (jnp.full(shape, -jnp.inf, jnp.float32), zeros, zeros, zeros)
    if num_chunks == 1:
        carry, _ = body(init, jnp.int32(0))
    else:
        carry, _ = jax.lax.scan(jax.checkpoint(body), init, jnp.arange(num_chunks, dtype=jnp.int32))
    running_max, total, weighted, target_logit = carry
    log_total = jnp.log(total)
    stats = {
        "logprobs": (target_logit - running_max) - log_total,  # log_softmax's order of operations
        "is_argmax": target_logit >= running_max,
    }
    if with_entropy:  # H = log Σ exp(l - m) - E[l - m]
        stats["entropy"] = log_total - weighted / total
    return stats
