"""LoRA: low-rank adapters on the attention and MLP projections (Hu et al. 2021), as parameters of our own modules.

With `ModelConfig.lora_rank` = r > 0, each targeted projection W gains `lora_<target>_a` (`[in..., r]`, small uniform
init) and `lora_<target>_b` (`[r, out...]`, zeros), and computes `x W + (alpha / r) (dropout(x) A) B`; B = 0 at
the start, so a model with fresh adapters is its base model exactly. The adapters carry the logical axes of the
input and output axes of the weight they adapt, so they are sharded by the same rules.

Training keeps the base weights out of the train state (`split_trainable`): only adapters (and a scalar head) are
differentiated, updated and checkpointed; the base rides beside them, never copied (`train.step`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
PREFIX = "lora_"
FIELDS = {"rank": "lora_rank", "alpha": "lora_alpha", "dropout": "lora_dropout", "targets": "lora_targets"}
# Always trained with the adapters: a reward model's or value function's scalar head is new, not part of the base.
TRAINED_WITH_ADAPTERS = ("scalar_head",)


def config_fields(lora: Mapping[str, Any] | None) -> dict[str, Any]:
    """`config.model.lora` (rank, alpha, dropout, targets) -> ModelConfig's `lora_*` fields; an unknown key is a
    ValueError naming it."""
    if not lora:
        return {}
    lora = lora.to_dict() if hasattr(lora, "to_dict") else dict(lora)  # a ConfigDict too
    unknown = sorted(set(lora) - set(FIELDS))
    if unknown:
        raise ValueError(f"config.model.lora: unknown key(s) {unknown}; expected {sorted(FIELDS)}")
    fields = {FIELDS[key]: value for key, value in lora.items()}
    if "lora_targets" in fields:
        fields["lora_targets"] = tuple(fields["lora_targets"])
    return fields


def check_targets(targets: tuple[str, ...], family: str) -> None:
    """ValueError naming the first target that is not one of the family's projections."""
    for target in targets:
        if target not in TARGETS:
            raise ValueError(f"`targets`: {target!r} not in {family} layer: {', '.join(TARGETS)}")


def a_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = every axis but the last (the rank), as PEFT's default
    (kaiming-uniform with a = sqrt(5)) gives."""
    bound = 1.0 / np.sqrt(np.prod(shape[:-1]))
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def is_adapter_path(path: tuple[str, ...]) -> bool:
    """Whether a parameter path (dict keys) names a LoRA adapter."""
    return any(str(key).startswith(PREFIX) for key in path)


def _partition(tree: Any, keep, path: tuple[str, ...] = ()) -> Any:
    """The sub-tree of the dict `tree` whose leaf paths satisfy `keep(path)`; None when nothing is left."""
    if not isinstance(tree, Mapping):
        return tree if keep(path) else None
    out = {}
    for key, value in tree.items():
        kept = _partition(value, keep, (*path, key))
        if kept is not None:
            out[key] = kept
    return out or None


def split(params: Any) -> tuple[Any, Any]:
    """(base, adapters): the dict tree without its `lora_*` leaves, and those leaves (same nesting)."""
    return _partition(params, lambda p: not is_adapter_path(p)) or {}, _partition(params, is_adapter_path) or {}


def split_trainable(params: Any, config) -> tuple[Any, Any]:
    """(trainable, frozen) of one model's params: without adapters (`config.lora_rank` 0) everything trains and
    frozen is None; with them, the adapters and the scalar head train and the base weights are frozen. Works on
    arrays and on boxed abstract trees alike. (A T5 config has no adapters: everything trains.)"""
    if not getattr(config, "lora_rank", 0):
        return params, None

    def trained(path):
        return is_adapter_path(path) or any(key in TRAINED_WITH_ADAPTERS for key in path)

    return _partition(params, trained) or {}, _partition(params, lambda p: not trained(p)) or {}


def combine(base: Any, adapters: Any) -> Any:
    """Deep-merges two dict trees with disjoint leaves (the inverse of `split` / `split_trainable`); None = {}.
    The leaves are the same arrays: nothing is copied."""
    if base is None:
        return adapters
    if adapters is None:
        return base
    if not isinstance(base, Mapping) or not isinstance(adapters, Mapping):
        raise ValueError("combine: both trees have a leaf at the same path")
    out = dict(base)
    for key, value in adapters.items():
        out[key] = combine(base[key], value) if key in base else value
    return out


def _merge_layer(layer: dict, config) -> dict:
    """One layer's (or the stacked layers') params with adapters folded into the weights: W += (alpha / r) A B."""
    scale = config.lora_alpha / config.lora_rank
    group = config.num_heads // config.num_kv_heads
    attention, mlp = dict(layer["attention"]), dict(layer["mlp"])

    def fold(block: dict, weight: str, target: str, spec: str, slot=None) -> None:
        """block[weight] += scale * A @ B of `target` (on `[..., slot, :]` of a fused weight), dropping A and B."""
        a, b = block.pop(f"{PREFIX}{target}_a", None), block.pop(f"{PREFIX}{target}_b", None)
        if a is None:
            return
        w = block[weight]
        update = (scale * jnp.einsum(spec, a.astype(jnp.float32), b.astype(jnp.float32))).astype(w.dtype)
        block[weight] = w + update if slot is None else w.at[..., slot, :].add(update)

    for target, slot in (("q", slice(0, group)), ("k", slice(group, group + 1)), ("v", slice(group + 1, group + 2))):
        fold(attention, "qkv_proj", target, "...dr,...rkcf->...dkcf", slot)  # slots: queries, key, value
    fold(attention, "o_proj", "o", "...hkr,...rd->...hkd")
    for slot, target in enumerate(("gate", "up")):
        fold(mlp, "gate_up_proj", target, "...dr,...rf->...df", slot)
    fold(mlp, "down_proj", "down", "...fr,...rd->...fd")
    return {**layer, "attention": attention, "mlp": mlp}


def merge(params: Any, config) -> Any:
    """The params of `config` with every adapter folded into its weight (either layer layout), for export or for a
    model without LoRA: `Transformer(config.replace(lora_rank=0))` on them gives the same outputs."""
    if not config.lora_rank:
        return params
    return {
        key: _merge_layer(value, config) if key == "layers" or key.startswith("layers_") else value
        for key, value in params.items()
    }


def init_adapters(abstract_params: Any, seed: int, shardings: Any | None = None) -> Any:
    """Fresh adapters for the boxed abstract params of a LoRA config (`loading.abstract_params`): A uniform
    (`a_init`), B zeros, placed with `shardings` (the adapters' part of the param shardings) when given."""
    import flax.linen as nn

    _, abstract = split(nn.unbox(abstract_params))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)

    def init(key):
        arrays = []
        for index, (path, leaf) in enumerate(leaves):
            name = str(path[-1].key)
            if name.endswith("_a"):
                arrays.append(a_init(jax.random.fold_in(key, index), leaf.shape, leaf.dtype))
            else:
                arrays.append(jnp.zeros(leaf.shape, leaf.dtype))
        return jax.tree_util.tree_unflatten(treedef, arrays)

    return jax.jit(init, out_shardings=shardings)(jax.random.key(seed))
