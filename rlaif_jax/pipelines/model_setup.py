"""Builds the mesh and the model a config asks for (`config.mesh`, `config.model`)."""

from __future__ import annotations

import os

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


def initial_policy(config, workdir, mesh, rules):
    """The starting policy: `config.model`, or with `config.sft_first` the result of running `config.sft` into
    WORKDIR/sft first (skipped when WORKDIR/sft/hf_model exists, so a re-run resumes)."""
    if not config.sft_first:
        return build_model(config.model, mesh, rules)
    from rlaif_jax.pipelines import sft as sft_pipeline

    sft_dir = os.path.join(workdir, "sft")
    if not os.path.exists(os.path.join(sft_dir, "hf_model", "config.json")):
        sft_pipeline.run(config.sft, sft_dir)
    model_config = config.model.copy_and_resolve_references()
    with model_config.unlocked():
        model_config.name = os.path.join(sft_dir, "hf_model")
    return build_model(model_config, mesh, rules)
