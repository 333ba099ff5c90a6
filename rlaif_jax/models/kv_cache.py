"""The decoding cache: a plain pytree of stacked per-layer keys and values."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.models.config import ModelConfig, parse_dtype


def init_cache(config: ModelConfig, batch_size: int, max_length: int) -> dict[str, jax.Array]:
    """An empty cache for `batch_size` rows of up to `max_length` tokens.

    Returns {'k', 'v': [layers, batch, max_length, kv_heads, head_dim] in the activation dtype (with
             `config.scan_layers`; otherwise a tuple of `layers` arrays [1, batch, max_length, kv_heads, head_dim]),
             'valid': bool [batch, max_length] (which slots hold real tokens), 'index': int32 [] (next free slot)}.
    """
    dtype = parse_dtype(config.dtype)
    layer_shape = (batch_size, max_length, config.num_kv_heads, config.head_dim)
    if config.scan_layers:
        k = jnp.zeros((config.num_layers, *layer_shape), dtype)
        v = jnp.zeros((config.num_layers, *layer_shape), dtype)
    else:
        k = tuple(jnp.zeros((1, *layer_shape), dtype) for _ in range(config.num_layers))
        v = tuple(jnp.zeros((1, *layer_shape), dtype) for _ in range(config.num_layers))
    return {
        "k": k,
        "v": v,
        "valid": jnp.zeros((batch_size, max_length), bool),
        "index": jnp.zeros((), jnp.int32),
    }


def repeat_rows(cache: dict[str, jax.Array], repeats: int) -> dict[str, jax.Array]:
    """Repeats every batch row `repeats` times consecutively (row i -> rows i*repeats .. i*repeats+repeats-1)."""
    if repeats == 1:
        return cache

    def repeat(kv):
        return jax.tree.map(lambda x: jnp.repeat(x, repeats, axis=1), kv)

    return {
        "k": repeat(cache["k"]),
        "v": repeat(cache["v"]),
        "valid": jnp.repeat(cache["valid"], repeats, axis=0),
        "index": cache["index"],
    }
