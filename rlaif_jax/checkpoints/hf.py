"""HF-format checkpoints: safetensors state dicts to our stacked parameter tree and back (host numpy, no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from rlaif_jax.checkpoints import hf_slices
from rlaif_jax.models.config import ModelConfig

_LAYER = "model.layers.{i}."


def read_safetensors(directory: str) -> dict[str, np.ndarray]:
    """All tensors of the `*.safetensors` files in `directory` (sharded checkpoints included), as numpy arrays."""
    state = {}
    for path in hf_slices.safetensors_files(directory):
        with safe_open(path, framework="numpy") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
    return state


def params_from_hf_state_dict(
    state: Mapping[str, np.ndarray], config: ModelConfig, *, source: str = "checkpoint"
) -> dict[str, Any]:
    """Maps an HF Llama/Qwen2/Qwen3/Mistral/Gemma-3-text state dict (torch layout, `[out, in]`) onto our parameter tree.

    Per-layer tensors are stacked on a leading `[layers]` axis for the scanned decoder. Arrays stay on the host.
    (`hf_slices.lazy_params` is the same mapping read block by block, for loading straight into shards.)
    """
    return hf_slices.materialize(hf_slices.lazy_params(hf_slices.StateDictSource(state, source), config))


def hf_state_dict_from_params(params: Mapping[str, Any], config: ModelConfig) -> dict[str, np.ndarray]:
    """Inverse of `params_from_hf_state_dict`: our tree (any device placement) to an HF state dict of numpy arrays."""
    d, h, kvh, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    host = lambda x: np.ascontiguousarray(np.asarray(x))  # noqa: E731
    layers = params["layers"]
    state = {
        "model.embed_tokens.weight": host(params["embedding"]),
        "model.norm.weight": host(params["final_norm"]["scale"]),
    }
    if not config.tie_word_embeddings:
        state["lm_head.weight"] = host(np.asarray(params["lm_head"]).T)
    group = h // kvh
    qkv, gate_up = np.asarray(layers["attention"]["qkv_proj"]), np.asarray(layers["mlp"]["gate_up_proj"])
    per_layer = {
        "self_attn.q_proj.weight": (qkv[:, :, :, :group], lambda w: w.reshape(d, h * hd).T),
        "self_attn.k_proj.weight": (qkv[:, :, :, group], lambda w: w.reshape(d, kvh * hd).T),
        "self_attn.v_proj.weight": (qkv[:, :, :, group + 1], lambda w: w.reshape(d, kvh * hd).T),
        "self_attn.o_proj.weight": (layers["attention"]["o_proj"], lambda w: w.reshape(h * hd, d).T),
        "mlp.gate_proj.weight": (gate_up[:, :, 0], np.transpose),
        "mlp.up_proj.weight": (gate_up[:, :, 1], np.transpose),
        "mlp.down_proj.weight": (layers["mlp"]["down_proj"], np.transpose),
        **{f"{hf}.weight": (layers[ours]["scale"], lambda w: w) for ours, hf in hf_slices.norm_names(config).items()},
    }
    if config.attention_bias:
        bias = np.asarray(layers["attention"]["qkv_bias"])
        per_layer["self_attn.q_proj.bias"] = (bias[:, :, :group], lambda b: b.reshape(-1))
        per_layer["self_attn.k_proj.bias"] = (bias[:, :, group], lambda b: b.reshape(-1))
        per_layer["self_attn.v_proj.bias"] = (bias[:, :, group + 1], lambda b: b.reshape(-1))
    if config.qk_norm:
        per_layer["self_attn.q_norm.weight"] = (layers["attention"]["q_norm"]["scale"], lambda w: w)
        per_layer["self_attn.k_norm.weight"] = (layers["attention"]["k_norm"]["scale"], lambda w: w)
    for suffix, (stacked, convert) in per_layer.items():
        stacked = np.asarray(stacked)
        for i in range(config.num_layers):
            state[_LAYER.format(i=i) + suffix] = host(convert(stacked[i]))
    return state


def write_safetensors(state: Mapping[str, np.ndarray], path: str) -> None:
    """Writes `state` to `path` atomically (`workdir.write_path_atomic`), with the metadata transformers expects."""
    from rlaif_jax.workdir import write_path_atomic

    write_path_atomic(path, lambda tmp: safetensors.numpy.save_file(dict(state), tmp, metadata={"format": "pt"}))
