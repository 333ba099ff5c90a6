"""GGUF files (llama.cpp): dequantised weights and an HF-style config, read with the `gguf` package."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
from tqdm import tqdm

SUPPORTED_GGUF_ARCHITECTURES = ("llama", "qwen2")

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_BLOCK_PATTERN = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def _field(reader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _unpermute_rope_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Undoes llama.cpp's convert-time q/k row permutation (interleaved RoPE pairs back to HF's rotate-half)."""
    half = weight.shape[0] // num_heads // 2
    return weight.reshape(num_heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def read_gguf(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a GGUF file into (HF `config.json` dict, HF-named float32 state dict in torch layout `[out, in]`)."""
    import gguf  # imported here so `rlaif_jax.models` loads without it until a GGUF is asked for

    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file not found: {path}")
    reader = gguf.GGUFReader(path)
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise ValueError(f"{path}: unknown architecture {arch!r}; supported: {SUPPORTED_GGUF_ARCHITECTURES}")
    num_heads = int(_field(reader, f"{arch}.attention.head_count"))
    num_kv_heads = int(_field(reader, f"{arch}.attention.head_count_kv", num_heads))
    hidden = int(_field(reader, f"{arch}.embedding_length"))
    tensor_names = {t.name for t in reader.tensors}
    if "rope_freqs.weight" in tensor_names:
        raise ValueError(f"{path}: GGUF Llama-3 rope_freqs scaling is not supported; load the HF safetensors instead")
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    hf_config = {
        "model_type": arch,
        "vocab_size": int(_field(reader, f"{arch}.vocab_size", embedding.shape[-1])),
        "hidden_size": hidden,
        "intermediate_size": int(_field(reader, f"{arch}.feed_forward_length")),
        "num_hidden_layers": int(_field(reader, f"{arch}.block_count")),
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "head_dim": int(_field(reader, f"{arch}.attention.key_length", hidden // num_heads)),
        "rope_theta": float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        "rms_norm_eps": float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)),
        "max_position_embeddings": int(_field(reader, f"{arch}.context_length", 2048)),
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "attention_bias": any(name.endswith("attn_q.bias") for name in tensor_names),
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": _field(reader, "tokenizer.ggml.padding_token_id"),
    }
    state = {}
    for tensor in tqdm(reader.tensors, desc=f"dequantising {os.path.basename(path)}", leave=False):
        weight = np.asarray(gguf.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if tensor.name in _GLOBAL_NAMES:
            state[_GLOBAL_NAMES[tensor.name]] = weight
            continue
        match = _BLOCK_PATTERN.match(tensor.name)
        if match is None or match.group(2) not in _BLOCK_NAMES:
            continue  # e.g. rope_freqs, which the config already describes
        layer, kind, suffix = match.groups()
        if arch == "llama" and kind in ("attn_q", "attn_k"):
            weight = _unpermute_rope_rows(weight, num_heads if kind == "attn_q" else num_kv_heads)
        state[f"model.layers.{layer}.{_BLOCK_NAMES[kind]}.{suffix}"] = weight
    return hf_config, state
