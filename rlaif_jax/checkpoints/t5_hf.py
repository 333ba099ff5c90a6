"""HF T5 checkpoints (`T5ForConditionalGeneration` safetensors, torch `[out, in]` layout) to our `EncoderDecoder`
parameter tree and back (host numpy)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlaif_jax.models.t5 import T5Config

# (our path, HF name, HF -> ours, ours -> HF); {i} is the block number.
Rule = tuple[tuple[str, ...], str, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def config_from_hf(hf: Mapping[str, Any], **overrides) -> T5Config:
    """Our T5Config from an HF T5 `config.json` dict; `overrides`: dtype / param_dtype."""
    if hf.get("model_type") != "t5":
        raise ValueError(f"model_type={hf.get('model_type')!r}: expected 't5'")
    tie = bool(hf.get("tie_word_embeddings", True))
    eos = hf.get("eos_token_id", 1)
    fields = dict(
        vocab_size=int(hf["vocab_size"]),
        d_model=int(hf["d_model"]),
        d_kv=int(hf["d_kv"]),
        d_ff=int(hf["d_ff"]),
        num_layers=int(hf["num_layers"]),
        num_decoder_layers=int(hf.get("num_decoder_layers") or hf["num_layers"]),
        num_heads=int(hf["num_heads"]),
        relative_attention_num_buckets=int(hf.get("relative_attention_num_buckets", 32)),
        relative_attention_max_distance=int(hf.get("relative_attention_max_distance", 128)),
        layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-6)),
        feed_forward_proj=str(hf.get("feed_forward_proj", "relu")),
        tie_word_embeddings=tie,
        # transformers >= 5 writes scale_decoder_outputs; before, an untied config meant v1.1 (no scaling).
        scale_decoder_outputs=bool(hf.get("scale_decoder_outputs", tie)),
        decoder_start_token_id=int(hf.get("decoder_start_token_id") or 0),
        pad_token_id=int(hf.get("pad_token_id") or 0),
        eos_token_ids=tuple(eos) if isinstance(eos, (list, tuple)) else (int(eos),),
    )
    return T5Config(**{**fields, **overrides})


def config_to_hf(config: T5Config) -> dict[str, Any]:
    """The HF `config.json` dict of `config` (architectures T5ForConditionalGeneration)."""
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "is_encoder_decoder": True,
        "vocab_size": config.vocab_size,
        "d_model": config.d_model,
        "d_kv": config.d_kv,
        "d_ff": config.d_ff,
        "num_layers": config.num_layers,
        "num_decoder_layers": config.num_decoder_layers,
        "num_heads": config.num_heads,
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "relative_attention_max_distance": config.relative_attention_max_distance,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "feed_forward_proj": config.feed_forward_proj,
        "tie_word_embeddings": config.tie_word_embeddings,
        "scale_decoder_outputs": config.scale_decoder_outputs,
        "decoder_start_token_id": config.decoder_start_token_id,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": list(config.eos_token_ids) if len(config.eos_token_ids) > 1 else config.eos_token_ids[0],
        "dropout_rate": 0.0,
        "dtype": config.param_dtype,
    }


def _rules(config: T5Config) -> list[Rule]:
    d, h, dk = config.d_model, config.num_heads, config.d_kv
    same = (lambda w: w, lambda w: w)
    qkv = (lambda w: w.T.reshape(d, h, dk), lambda w: w.reshape(d, h * dk).T)
    out = (lambda w: w.T.reshape(h, dk, d), lambda w: w.reshape(h * dk, d).T)
    transpose = (np.transpose, np.transpose)
    ffn = ("wi_0", "wi_1", "wo") if config.feed_forward_proj.startswith("gated") else ("wi", "wo")

    def attention(ours: str, hf: str) -> list:
        return [((ours, name), f"{hf}.{name}.weight", *(out if name == "o" else qkv)) for name in "qkvo"]

    rules: list[Rule] = [
        (("shared",), "shared.weight", *same),
        (("encoder_relative_bias",), "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", *same),
        (("decoder_relative_bias",), "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", *same),
        (("encoder_norm", "scale"), "encoder.final_layer_norm.weight", *same),
        (("decoder_norm", "scale"), "decoder.final_layer_norm.weight", *same),
    ]
    if not config.tie_word_embeddings:
        rules.append((("lm_head",), "lm_head.weight", *transpose))
    for i in range(config.num_layers):
        prefix = f"encoder.block.{i}.layer"
        block = [
            (("attention_norm", "scale"), f"{prefix}.0.layer_norm.weight", *same),
            *attention("attention", f"{prefix}.0.SelfAttention"),
            (("mlp_norm", "scale"), f"{prefix}.1.layer_norm.weight", *same),
            *[(("mlp", name), f"{prefix}.1.DenseReluDense.{name}.weight", *transpose) for name in ffn],
        ]
        rules += [((f"encoder_{i}", *path), name, a, b) for path, name, a, b in block]
    for i in range(config.num_decoder_layers):
        prefix = f"decoder.block.{i}.layer"
        block = [
            (("attention_norm", "scale"), f"{prefix}.0.layer_norm.weight", *same),
            *attention("attention", f"{prefix}.0.SelfAttention"),
            (("cross_attention_norm", "scale"), f"{prefix}.1.layer_norm.weight", *same),
            *attention("cross_attention", f"{prefix}.1.EncDecAttention"),
            (("mlp_norm", "scale"), f"{prefix}.2.layer_norm.weight", *same),
            *[(("mlp", name), f"{prefix}.2.DenseReluDense.{name}.weight", *transpose) for name in ffn],
        ]
        rules += [((f"decoder_{i}", *path), name, a, b) for path, name, a, b in block]
    return rules


def params_from_hf_state_dict(
    state: Mapping[str, np.ndarray], config: T5Config, *, source: str = "checkpoint"
) -> dict[str, Any]:
    """Our `EncoderDecoder` tree from an HF T5 state dict; a missing tensor is a KeyError naming it."""
    params: dict[str, Any] = {}
    for path, name, to_ours, _ in _rules(config):
        if name not in state:
            raise KeyError(f"{source} has no tensor {name!r} (a T5 checkpoint needs it)")
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = np.ascontiguousarray(to_ours(np.asarray(state[name])))
    if params["shared"].shape != (config.vocab_size, config.d_model):
        raise ValueError(
            f"{source}: shared.weight has shape {params['shared'].shape}, config says "
            f"{(config.vocab_size, config.d_model)}"
        )
    return params


def hf_state_dict_from_params(params: Mapping[str, Any], config: T5Config) -> dict[str, np.ndarray]:
    """Inverse of `params_from_hf_state_dict` (host arrays)."""
    state = {}
    for path, name, _, to_hf in _rules(config):
        node = params
        for key in path:
            node = node[key]
        state[name] = np.ascontiguousarray(to_hf(np.asarray(node)))
    return state
