"""HF-format tensors read slice by slice into our parameter layout, so each host reads only the shards it holds.

An HF checkpoint stores `[out, in]` matrices per layer; our tree stacks layers and fuses q/k/v and gate/up
(`rlaif_jax.checkpoints.hf`). Here every leaf of our tree is a `LazyLeaf`: its shape and a function from an index
(the tuple of slices that `jax.make_array_from_callback` hands over for one device's shard) to exactly that block,
built from the matching blocks of the HF tensors. A `TensorSource` serves those blocks, either from safetensors
files (`safe_open(...).get_slice`, opened per read so no file stays mapped) or from an in-memory state dict (GGUF).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from safetensors import safe_open

from rlaif_jax.models.config import ModelConfig

_LAYER = "model.layers.{i}."
Index = tuple[slice, ...]


def norm_names(config: ModelConfig) -> dict[str, str]:
    """Our per-layer norms -> HF's names. Llama's `post_attention_layernorm` is the pre-MLP norm; Gemma 3's is the
    norm on the attention output, and its pre-MLP norm is `pre_feedforward_layernorm`."""
    if not config.sandwich_norms:
        return {"input_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm"}
    return {
        "input_norm": "input_layernorm",
        "attention_output_norm": "post_attention_layernorm",
        "post_attention_norm": "pre_feedforward_layernorm",
        "mlp_output_norm": "post_feedforward_layernorm",
    }


class TensorSource:
    """Named tensors that can be read block-wise: `shape(name)` and `read(name, index)`."""

    description: str = "checkpoint"

    def shape(self, name: str) -> tuple[int, ...]:
        raise NotImplementedError

    def read(self, name: str, index: Index) -> np.ndarray:
        raise NotImplementedError

    def missing(self, name: str) -> KeyError:
        return KeyError(f"{self.description} has no tensor {name!r} (a Llama-family checkpoint needs it)")


class StateDictSource(TensorSource):
    """Tensors already in memory (a GGUF file's dequantised state dict, a test's dict)."""

    def __init__(self, state: Mapping[str, Any], description: str = "checkpoint"):
        self.state, self.description = state, description

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.state:
            raise self.missing(name)
        return tuple(np.shape(self.state[name]))

    def read(self, name: str, index: Index) -> np.ndarray:
        return np.asarray(self.state[name])[index]


class SafetensorsSource(TensorSource):
    """The `*.safetensors` files of an HF directory (a sharded checkpoint's index included), read per block."""

    def __init__(self, directory: str):
        self.description = directory
        self.files: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for path in safetensors_files(directory):
            with safe_open(path, framework="numpy") as f:
                for name in f.keys():
                    self.files[name] = path
                    self.shapes[name] = tuple(f.get_slice(name).get_shape())

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise self.missing(name)
        return self.shapes[name]

    def read(self, name: str, index: Index) -> np.ndarray:
        # Opened per read: a file kept open stays mapped, and the pages read so far count as this process's memory.
        with safe_open(self.files[name], framework="numpy") as f:
            return np.array(f.get_slice(name)[index])


def safetensors_files(directory: str) -> list[str]:
    """The weight files of an HF directory (as its `model.safetensors.index.json` lists them, else `*.safetensors`
    less our `scalar_head.safetensors`); FileNotFoundError when there are none."""
    index_path = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            names = sorted(set(json.load(f)["weight_map"].values()))
        paths = [os.path.join(directory, name) for name in names]
    else:
        paths = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
        paths = [p for p in paths if os.path.basename(p) != "scalar_head.safetensors"]
    if not paths:
        raise FileNotFoundError(f"no *.safetensors weights in {directory}")
    return paths


@dataclasses.dataclass(frozen=True)
class LazyLeaf:
    """One parameter of our tree, not yet read: `read(index)` returns the block `index` (one slice per axis)."""

    shape: tuple[int, ...]
    read: Callable[[Index], np.ndarray]

    def full(self) -> np.ndarray:
        """The whole parameter, `shape`, read at once."""
        return self.read(tuple(slice(0, n) for n in self.shape))


def _bounds(index_slice: slice, size: int) -> tuple[int, int]:
    start, stop, step = index_slice.indices(size)
    if step != 1:
        raise ValueError(f"only contiguous blocks are read; got step {step}")
    return start, stop


def read_block(source: TensorSource, name: str, splits: Sequence[Sequence[int]], index: Index) -> np.ndarray:
    """Reads block `index` of HF tensor `name` viewed with each of its axes split row-major into `splits`.

    E.g. q_proj `[heads * head_dim, hidden]` with splits `((kv_heads, group, head_dim), (hidden,))` is viewed as
    `[kv_heads, group, head_dim, hidden]`, and `index` has one slice per sub-axis. Along each HF axis only the rows of
    the outermost sub-axis's range are read (a contiguous range); inner sub-axes are sliced in memory.

    Returns: the block, `[len(s) for s in index]`.
    """
    hf_index, block_shape, inner_index = [], [], []
    position = 0
    for sizes in splits:
        parts = index[position : position + len(sizes)]
        position += len(sizes)
        inner = math.prod(sizes[1:])
        start, stop = _bounds(parts[0], sizes[0])
        hf_index.append(slice(start * inner, stop * inner))
        block_shape += [stop - start, *sizes[1:]]
        inner_index += [slice(None), *parts[1:]]
    return source.read(name, tuple(hf_index)).reshape(block_shape)[tuple(inner_index)]


def _check_shape(source: TensorSource, name: str, expected: tuple[int, ...]) -> None:
    shape = source.shape(name)
    if shape != expected:
        raise ValueError(f"{source.description}: {name} has shape {shape}, config says {expected}")


def _stacked(num_layers: int, per_layer: Callable[[int, Index], np.ndarray], layer_shape) -> LazyLeaf:
    """A `[layers, ...]` leaf whose layer `i` block is `per_layer(i, index)`."""

    def read(index: Index) -> np.ndarray:
        start, stop = _bounds(index[0], num_layers)
        return np.stack([per_layer(i, index[1:]) for i in range(start, stop)])

    return LazyLeaf((num_layers, *layer_shape), read)


def lazy_params(source: TensorSource, config: ModelConfig) -> dict[str, Any]:
    """Our parameter tree (scanned layout, `layers` stacked) of `config` as LazyLeafs reading from `source`.

    Every HF tensor the tree needs is checked up front: a missing one is a KeyError naming it, a wrong shape a
    ValueError naming it with both shapes. Nothing is read until a leaf's `read` is called.
    """
    d, h, kvh, hd, f = (
        config.hidden_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
        config.intermediate_size,
    )
    group, v, layers = h // kvh, config.vocab_size, range(config.num_layers)
    everything = slice(None)

    def name(i: int, suffix: str) -> str:
        return _LAYER.format(i=i) + suffix

    expected = {
        "model.embed_tokens.weight": (v, d),
        "model.norm.weight": (d,),
        **({} if config.tie_word_embeddings else {"lm_head.weight": (v, d)}),
    }
    layer_shapes = {
        "self_attn.q_proj.weight": (h * hd, d),
        "self_attn.k_proj.weight": (kvh * hd, d),
        "self_attn.v_proj.weight": (kvh * hd, d),
        "self_attn.o_proj.weight": (d, h * hd),
        "mlp.gate_proj.weight": (f, d),
        "mlp.up_proj.weight": (f, d),
        "mlp.down_proj.weight": (d, f),
        **{f"{hf}.weight": (d,) for hf in norm_names(config).values()},
    }
    if config.attention_bias:
        layer_shapes |= {f"self_attn.{p}_proj.bias": (n * hd,) for p, n in (("q", h), ("k", kvh), ("v", kvh))}
    if config.qk_norm:
        layer_shapes |= {"self_attn.q_norm.weight": (hd,), "self_attn.k_norm.weight": (hd,)}
    for i in layers:
        expected |= {name(i, suffix): shape for suffix, shape in layer_shapes.items()}
    for tensor, shape in expected.items():
        _check_shape(source, tensor, shape)

    def qkv_weight(i: int, index: Index) -> np.ndarray:
        # ours [hidden, kv_heads, group + 2, head_dim]: each kv head's queries, then its key and value.
        embed, kv, qkv, dim = index
        parts = [
            read_block(
                source, name(i, f"self_attn.{p}_proj.weight"), ((kvh, n, hd), (d,)), (kv, everything, dim, embed)
            )
            for p, n in (("q", group), ("k", 1), ("v", 1))
        ]
        return np.concatenate(parts, axis=1).transpose(3, 0, 1, 2)[:, :, qkv]

    def qkv_bias(i: int, index: Index) -> np.ndarray:
        kv, qkv, dim = index
        parts = [
            read_block(source, name(i, f"self_attn.{p}_proj.bias"), ((kvh, n, hd),), (kv, everything, dim))
            for p, n in (("q", group), ("k", 1), ("v", 1))
        ]
        return np.concatenate(parts, axis=1)[:, qkv]

    def o_proj(i: int, index: Index) -> np.ndarray:
        heads, dim, embed = index  # ours [heads, head_dim, hidden] from HF [hidden, heads * head_dim]
        return read_block(source, name(i, "self_attn.o_proj.weight"), ((d,), (h, hd)), (embed, heads, dim)).transpose(
            1, 2, 0
        )

    def gate_up(i: int, index: Index) -> np.ndarray:
        embed, which, mlp = index  # ours [hidden, 2, mlp] from HF gate/up [mlp, hidden]
        start, stop = _bounds(which, 2)
        projections = ("gate", "up")[start:stop]
        blocks = [
            read_block(source, name(i, f"mlp.{p}_proj.weight"), ((f,), (d,)), (mlp, embed)).T for p in projections
        ]
        return np.stack(blocks, axis=1)

    def down(i: int, index: Index) -> np.ndarray:
        mlp, embed = index  # ours [mlp, hidden] from HF [hidden, mlp]
        return read_block(source, name(i, "mlp.down_proj.weight"), ((d,), (f,)), (embed, mlp)).T

    def vector(tensor: Callable[[int], str], size: int) -> LazyLeaf:
        return _stacked(config.num_layers, lambda i, index: read_block(source, tensor(i), ((size,),), index), (size,))

    attention = {
        "qkv_proj": _stacked(config.num_layers, qkv_weight, (d, kvh, group + 2, hd)),
        "o_proj": _stacked(config.num_layers, o_proj, (h, hd, d)),
    }
    if config.attention_bias:
        attention["qkv_bias"] = _stacked(config.num_layers, qkv_bias, (kvh, group + 2, hd))
    if config.qk_norm:
        for which in ("q", "k"):
            attention[f"{which}_norm"] = {"scale": vector(lambda i, w=which: name(i, f"self_attn.{w}_norm.weight"), hd)}
    embedding = LazyLeaf((v, d), lambda index: read_block(source, "model.embed_tokens.weight", ((v,), (d,)), index))
    params = {
        "embedding": embedding,
        "layers": {
            "attention": attention,
            "mlp": {
                "gate_up_proj": _stacked(config.num_layers, gate_up, (d, 2, f)),
                "down_proj": _stacked(config.num_layers, down, (f, d)),
            },
            **{
                ours: {"scale": vector(lambda i, hf=hf: name(i, f"{hf}.weight"), d)}
                for ours, hf in norm_names(config).items()
            },
        },
        "final_norm": {"scale": LazyLeaf((d,), lambda index: read_block(source, "model.norm.weight", ((d,),), index))},
    }
    if not config.tie_word_embeddings:
        params["lm_head"] = LazyLeaf(
            (d, v), lambda index: read_block(source, "lm_head.weight", ((v,), (d,)), index[::-1]).T
        )
    return params


def unstacked(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """`lazy_params`'s tree in the per-layer layout (`layers_i`), each leaf reading layer `i` of the stacked one."""

    def layer(leaf: LazyLeaf, i: int) -> LazyLeaf:
        return LazyLeaf(leaf.shape[1:], lambda index: leaf.read((slice(i, i + 1), *index))[0])

    out = {key: value for key, value in params.items() if key != "layers"}
    for i in range(num_layers):
        out[f"layers_{i}"] = _map(lambda leaf, i=i: layer(leaf, i), params["layers"])
    return out


def _map(fn: Callable[[LazyLeaf], Any], tree: Any) -> Any:
    if isinstance(tree, LazyLeaf):
        return fn(tree)
    return {key: _map(fn, value) for key, value in tree.items()}


def materialize(params: Any) -> Any:
    """Reads every LazyLeaf of `params` whole (host numpy)."""
    return _map(lambda leaf: leaf.full(), params)
