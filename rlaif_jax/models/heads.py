"""Scalar heads on top of the decoder's hidden states: the value of PPO and the score of a reward model."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class ScalarHead(nn.Module):
    """Linear map `[batch, seq, hidden] -> float32 [batch, seq]`, initialised to output 0."""

    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, hidden: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
            (hidden.shape[-1],),
            self.param_dtype,
        )
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ()), (), self.param_dtype)
        return jnp.einsum("bsd,d->bs", hidden, kernel.astype(hidden.dtype), preferred_element_type=jnp.float32) + bias
