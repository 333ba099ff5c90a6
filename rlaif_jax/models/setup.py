"""Builds the mesh and the model a config asks for (`config.mesh`, `config.model`): what every job starts with."""

from __future__ import annotations

from rlaif_jax import models, sharding
from rlaif_jax.models.byte_tokenizer import byte_tokenizer


def build_mesh(config):
    """The mesh of `config.mesh`, after joining the other hosts when launched on several."""
    sharding.maybe_initialize_distributed()
    return sharding.mesh_from_config(config.mesh)


def build_model(model_config, mesh, rules) -> models.LanguageModel:
    """Loads `model_config.name` (path, alias or hub id), or random-initialises `model_config.tiny` if 'tiny'."""
    if model_config.name == "tiny":
        tiny = dict(model_config.tiny)
        config = models.ModelConfig(
            **tiny, dtype=model_config.dtype, scan_layers=model_config.scan_layers, scalar_head=model_config.scalar_head
        )
        return models.init_random(config, seed=model_config.seed, tokenizer=byte_tokenizer(), mesh=mesh, rules=rules)
    return models.load(
        model_config.name,
        dtype=model_config.dtype,
        mesh=mesh,
        rules=rules,
        scan_layers=model_config.scan_layers,
        scalar_head=model_config.scalar_head,
    )
