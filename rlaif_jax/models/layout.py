"""Converts parameter trees between the scanned layout (`layers`, stacked) and one tree per layer (`layers_i`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def unstack_layers(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """`{'layers': tree of [layers, ...]}` -> `{'layers_0': tree of [...], ...}`; other entries are kept.
    Works on host numpy arrays and on device arrays alike."""
    if "layers" not in params:
        return params
    unstacked = {key: value for key, value in params.items() if key != "layers"}
    for i in range(num_layers):
        unstacked[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], params["layers"])
    return unstacked


def stack_layers(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """Inverse of `unstack_layers`."""
    if "layers_0" not in params:
        return params
    per_layer = [params[f"layers_{i}"] for i in range(num_layers)]
    is_host = isinstance(jax.tree.leaves(per_layer[0])[0], np.ndarray)
    stack = np.stack if is_host else jnp.stack
    stacked = {key: value for key, value in params.items() if not key.startswith("layers_")}
    stacked["layers"] = jax.tree.map(lambda *xs: stack(xs), *per_layer)
    return stacked
