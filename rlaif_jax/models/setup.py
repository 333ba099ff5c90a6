"""Builds the mesh and the model a config asks for (`config.mesh`, `config.model`): what every job starts with."""

from __future__ import annotations

from rlaif_jax import models, sharding
from rlaif_jax.models import lora
from rlaif_jax.models.byte_tokenizer import byte_tokenizer
from rlaif_jax.models.config import RUNTIME_DEFAULTS
from rlaif_jax.models.t5 import T5Config


def runtime_options(model_config) -> dict:
    """The runtime fields of a `config.model` block (RUNTIME_DEFAULTS where it has none); param_dtype '' = dtype."""
    options = {name: model_config.get(name, default) for name, default in RUNTIME_DEFAULTS.items()}
    options["param_dtype"] = options["param_dtype"] or options["dtype"]
    return options


def build_mesh(config):
    """The mesh of `config.mesh` (over every process's devices once `distributed.initialize` has run)."""
    return sharding.mesh_from_config(config.mesh)


def build_model(model_config, mesh, rules, *, strict: bool = False) -> models.LanguageModel:
    """Loads `model_config.name` (path, alias, hub id or 'random:ARCH'), or random-initialises `model_config.tiny`
    if 'tiny' (`model_config.tiny_t5`, a T5 encoder-decoder, if 'tiny_t5'), with the block's dtype / param_dtype /
    remat / attention / vocab_chunk_size / layer layout, and fresh LoRA adapters when `model_config.lora.rank` > 0.
    `strict` (`config.mesh.strict`): a sharding rule that cannot apply is an error, not a warning."""
    options = runtime_options(model_config)
    if model_config.name == "tiny_t5":  # a random-init T5 encoder-decoder of `model_config.tiny_t5`
        if lora.config_fields(model_config.get("lora")).get("lora_rank"):
            raise ValueError("config.model.lora.rank > 0: LoRA adapters exist for the decoder-only families, not T5")
        t5_config = T5Config(**dict(model_config.tiny_t5), dtype=options["dtype"], param_dtype=options["param_dtype"])
        return models.init_random(
            t5_config, seed=model_config.seed, tokenizer=byte_tokenizer(), mesh=mesh, rules=rules, strict=strict
        )
    lora_settings = model_config.get("lora")
    if model_config.name == "tiny":
        config = models.ModelConfig(**dict(model_config.tiny), **options, **lora.config_fields(lora_settings))
        return models.init_random(
            config, seed=model_config.seed, tokenizer=byte_tokenizer(), mesh=mesh, rules=rules, strict=strict
        )
    return models.load(
        model_config.name,
        mesh=mesh,
        rules=rules,
        strict=strict,
        seed=model_config.get("seed", 0),
        lora=lora_settings,
        **options,
    )
