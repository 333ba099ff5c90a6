"""Known architectures by name, as HF `config.json` dicts: what 'random:NAME' initialises (benchmarks on a device
with no checkpoint, compile-only memory planning in `experiments/aot_memory.py`)."""

from __future__ import annotations

from typing import Any

from rlaif_jax.models.config import ModelConfig, from_hf_dict

_LLAMA3_COMMON = dict(
    model_type="llama",
    vocab_size=128256,
    num_attention_heads=32,
    num_key_value_heads=8,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    max_position_embeddings=131072,
    bos_token_id=128000,
    eos_token_id=[128001, 128008, 128009],
)

ARCHITECTURES: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-3.2-1B config.json
    "llama3_1b": dict(
        _LLAMA3_COMMON,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        head_dim=64,
        tie_word_embeddings=True,
        rope_scaling=dict(
            rope_type="llama3",
            factor=32.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
    ),
    # meta-llama/Llama-3.1-8B config.json
    "llama3_8b": dict(
        _LLAMA3_COMMON,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        head_dim=128,
        tie_word_embeddings=False,
        rope_scaling=dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
    ),
    # HuggingFaceTB/SmolLM2-135M-Instruct config.json
    "smollm2_135m": dict(
        model_type="llama",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    ),
    # google/gemma-3-270m config.json (the sizes agree with the gemma3-270m GGUF's metadata)
    "gemma3_270m": dict(
        model_type="gemma3_text",
        vocab_size=262144,
        hidden_size=640,
        intermediate_size=2048,
        num_hidden_layers=18,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
        sliding_window=512,
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        query_pre_attn_scalar=256,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    ),
}


RANDOM_PREFIX = "random:"  # a model name 'random:llama3_1b': a random initialisation of a known architecture


def is_random(name: str) -> bool:
    """Whether the model name `name` asks for a random initialisation ('random:ARCH')."""
    return name.startswith(RANDOM_PREFIX)


def random_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of the model name 'random:ARCH' (ARCH a key of ARCHITECTURES) with `overrides` (dtype,
    remat, ...)."""
    arch = name[len(RANDOM_PREFIX) :]
    if not is_random(name) or arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)} (as 'random:ARCH')")
    return from_hf_dict(ARCHITECTURES[arch], **overrides)
