"""Flax Llama-family models, their loading from HF / GGUF checkpoints, and export back to HF."""

from rlaif_jax.models.config import ModelConfig
from rlaif_jax.models.kv_cache import init_cache
from rlaif_jax.models.loading import LanguageModel, init_random, load, save_hf
from rlaif_jax.models.transformer import Transformer

__all__ = ["LanguageModel", "ModelConfig", "Transformer", "init_cache", "init_random", "load", "save_hf"]
