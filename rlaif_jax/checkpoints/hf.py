"""HF-format checkpoints: safetensors state dicts to our stacked parameter tree and back (host numpy, no torch)."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from rlaif_jax.models.config import ModelConfig

_LAYER = "model.layers.{i}."


def _norm_names(config: ModelConfig) -> dict[str, str]:
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


def read_safetensors(directory: str) -> dict[str, np.ndarray]:
    """All tensors of the `*.safetensors` files in `directory` (sharded checkpoints included), as numpy arrays."""
    index_path = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        paths = [os.path.join(directory, name) for name in files]
    else:
        paths = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
        paths = [p for p in paths if os.path.basename(p) != "scalar_head.safetensors"]
    if not paths:
        raise FileNotFoundError(f"no *.safetensors weights in {directory}")
    state = {}
    for path in paths:
        with safe_open(path, framework="numpy") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
    return state


def _take(state: Mapping[str, np.ndarray], key: str, source: str) -> np.ndarray:
    if key not in state:
        raise KeyError(f"{source} has no tensor {key!r} (a Llama-family checkpoint needs it)")
    return np.asarray(state[key])


def params_from_hf_state_dict(
    state: Mapping[str, np.ndarray], config: ModelConfig, *, source: str = "checkpoint"
) -> dict[str, Any]:
    """Maps an HF Llama/Qwen2/Qwen3/Mistral/Gemma-3-text state dict (torch layout, `[out, in]`) onto our parameter tree.

    Per-layer tensors are stacked on a leading `[layers]` axis for the scanned decoder. Arrays stay on the host.
    """
    d, h, kvh, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim

    def layer_stack(suffix: str, convert) -> np.ndarray:
        return np.stack([convert(_take(state, _LAYER.format(i=i) + suffix, source)) for i in range(config.num_layers)])

    def fused_qkv(i: int, kind: str) -> np.ndarray:
        # HF's [heads * head_dim, hidden] rows -> ours [hidden, kv_heads, group + 2, head_dim] (queries, key, value).
        prefix = _LAYER.format(i=i) + "self_attn."
        parts = [_take(state, f"{prefix}{name}_proj.{kind}", source) for name in ("q", "k", "v")]
        if kind == "weight":
            q, k, v = (p.T.reshape(d, kvh, -1, hd) for p in parts)
            return np.concatenate([q, k, v], axis=2)
        q, k, v = (p.reshape(kvh, -1, hd) for p in parts)
        return np.concatenate([q, k, v], axis=1)

    def gate_up(i: int) -> np.ndarray:
        prefix = _LAYER.format(i=i) + "mlp."
        return np.stack([_take(state, f"{prefix}{name}_proj.weight", source).T for name in ("gate", "up")], axis=1)

    layers = range(config.num_layers)
    attention = {
        "qkv_proj": np.stack([fused_qkv(i, "weight") for i in layers]),
        "o_proj": layer_stack("self_attn.o_proj.weight", lambda w: w.T.reshape(h, hd, d)),
    }
    if config.attention_bias:
        attention["qkv_bias"] = np.stack([fused_qkv(i, "bias") for i in layers])
    if config.qk_norm:
        attention["q_norm"] = {"scale": layer_stack("self_attn.q_norm.weight", lambda w: w)}
        attention["k_norm"] = {"scale": layer_stack("self_attn.k_norm.weight", lambda w: w)}
    params = {
        "embedding": _take(state, "model.embed_tokens.weight", source),
        "layers": {
            "attention": attention,
            "mlp": {
                "gate_up_proj": np.stack([gate_up(i) for i in layers]),
                "down_proj": layer_stack("mlp.down_proj.weight", np.transpose),
            },
            **{ours: {"scale": layer_stack(f"{hf}.weight", lambda w: w)} for ours, hf in _norm_names(config).items()},
        },
        "final_norm": {"scale": _take(state, "model.norm.weight", source)},
    }
    if not config.tie_word_embeddings:
        params["lm_head"] = _take(state, "lm_head.weight", source).T
    if params["embedding"].shape != (config.vocab_size, d):
        raise ValueError(
            f"{source}: model.embed_tokens.weight has shape {params['embedding'].shape}, "
            f"config says {(config.vocab_size, d)}"
        )
    return params


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
        **{f"{hf}.weight": (layers[ours]["scale"], lambda w: w) for ours, hf in _norm_names(config).items()},
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
