"""Flax models (the Llama family of decoders, a T5 encoder-decoder), their loading from HF / GGUF checkpoints, and
export back to HF."""

from rlaif_jax.models.config import ModelConfig
from rlaif_jax.models.kv_cache import init_cache
from rlaif_jax.models.loading import LanguageModel, init_random, load, save_hf, with_layer_layout
from rlaif_jax.models.t5 import EncoderDecoder, T5Config
from rlaif_jax.models.transformer import Transformer

__all__ = [
    "EncoderDecoder",
    "LanguageModel",
    "ModelConfig",
    "T5Config",
    "Transformer",
    "init_cache",
    "init_random",
    "load",
    "save_hf",
    "with_layer_layout",
]
