"""GGUF files (llama.cpp): dequantised weights and an HF-style config, read with the `gguf` package."""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import numpy as np
from tqdm import tqdm

SUPPORTED_GGUF_ARCHITECTURES = ("llama", "qwen2", "gemma3")

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
# Gemma 3's norms: llama.cpp's names, and its pre-MLP norm is `ffn_norm`.
_GEMMA3_BLOCK_NAMES = {
    **_BLOCK_NAMES,
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
# What llama.cpp fixes for every Gemma 3 rather than storing (llama-model.cpp, LLM_ARCH_GEMMA3): one global layer in
# six, RoPE theta 10,000 on the sliding layers, and attention scaled by head_dim ** -0.5 (query_pre_attn_scalar =
# head_dim) for the sizes below 27B.
_GEMMA3_SLIDING_PATTERN = 6
_GEMMA3_LOCAL_ROPE_THETA = 10000.0
_BLOCK_PATTERN = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def _field(reader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _unpermute_rope_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Undoes llama.cpp's convert-time q/k row permutation (interleaved RoPE pairs back to HF's rotate-half)."""
    half = weight.shape[0] // num_heads // 2
    return weight.reshape(num_heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_reader(path: str):
    """The `gguf.GGUFReader` of `path` (memory-mapped), shared by the weights and the tokenizer of one load: opening
    a file with a 262k-token vocabulary takes ~20 s, all of it parsing the metadata arrays."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file not found: {path}")
    stat = os.stat(path)
    return _cached_reader(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _cached_reader(path: str, mtime_ns: int, size: int):
    import gguf  # imported here so `rlaif_jax.models` loads without it until a GGUF is asked for

    del mtime_ns, size  # part of the cache key: a rewritten file is read again
    return gguf.GGUFReader(path)


def read_gguf(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a GGUF file into (HF `config.json` dict, HF-named float32 state dict in torch layout `[out, in]`)."""
    import gguf

    reader = gguf_reader(path)
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
    block_names = _BLOCK_NAMES
    if arch == "gemma3":
        block_names = _GEMMA3_BLOCK_NAMES
        num_layers = hf_config["num_hidden_layers"]
        hf_config.update(
            model_type="gemma3_text",
            hidden_activation="gelu_pytorch_tanh",
            sliding_window=int(_field(reader, "gemma3.attention.sliding_window")),
            layer_types=[
                "full_attention" if (i + 1) % _GEMMA3_SLIDING_PATTERN == 0 else "sliding_attention"
                for i in range(num_layers)
            ],
            rope_parameters={
                "full_attention": {"rope_type": "default", "rope_theta": hf_config["rope_theta"]},
                "sliding_attention": {"rope_type": "default", "rope_theta": _GEMMA3_LOCAL_ROPE_THETA},
            },
            query_pre_attn_scalar=hf_config["head_dim"],
        )
        if num_layers >= 62:  # 27B scales by hidden / heads instead (llama.cpp's rule)
            raise ValueError(f"{path}: Gemma 3 27B's attention scale is not supported from GGUF")
    state = {}
    for tensor in tqdm(reader.tensors, desc=f"dequantising {os.path.basename(path)}", leave=False):
        try:
            weight = np.asarray(gguf.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        except (NotImplementedError, ValueError, KeyError) as error:
            raise ValueError(
                f"{path}: tensor {tensor.name!r} has type {tensor.tensor_type.name}, which the gguf package cannot "
                f"dequantise ({error})"
            ) from error
        if tensor.name in _GLOBAL_NAMES:
            state[_GLOBAL_NAMES[tensor.name]] = weight
            continue
        match = _BLOCK_PATTERN.match(tensor.name)
        if match is None or match.group(2) not in block_names:
            continue  # e.g. rope_freqs, which the config already describes
        layer, kind, suffix = match.groups()
        if arch == "llama" and kind in ("attn_q", "attn_k"):
            weight = _unpermute_rope_rows(weight, num_heads if kind == "attn_q" else num_kv_heads)
        state[f"model.layers.{layer}.{block_names[kind]}.{suffix}"] = weight
    if arch == "gemma3":  # llama.cpp stores Gemma's norm weights w as 1 + w (it multiplies by the weight)
        state = {name: w - 1.0 if name.endswith("norm.weight") else w for name, w in state.items()}
    return hf_config, state
