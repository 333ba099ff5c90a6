"""The decoding cache: a plain pytree of stacked per-layer keys and values."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.models.config import ModelConfig, parse_dtype


def init_cache(config: ModelConfig, batch_size: int, max_length: int) -> dict[str, jax.Array]:
    """An empty cache for `batch_size` rows of up to `max_length` tokens.

    Returns {'k', 'v': [layers, batch, max_length, kv_heads, head_dim] in the activation dtype,
             'valid': bool [batch, max_length] (which slots hold real tokens), 'index': int32 [] (next free slot)}.
    """
    shape = (config.num_layers, batch_size, max_length, config.num_kv_heads, config.head_dim)
    dtype = parse_dtype(config.dtype)
    return {
        "k": jnp.zeros(shape, dtype),
        "v": jnp.zeros(shape, dtype),
        "valid": jnp.zeros((batch_size, max_length), bool),
        "index": jnp.zeros((), jnp.int32),
    }


def repeat_rows(cache: dict[str, jax.Array], repeats: int) -> dict[str, jax.Array]:
    """Repeats every batch row `repeats` times consecutively (row i -> rows i*repeats .. i*repeats+repeats-1)."""
    if repeats == 1:
        return cache
    return {
        "k": jnp.repeat(cache["k"], repeats, axis=1),
        "v": jnp.repeat(cache["v"], repeats, axis=1),
        "valid": jnp.repeat(cache["valid"], repeats, axis=0),
        "index": cache["index"],
    }
