"""The starting policy of a job that can fine-tune first (`config.sft_first`)."""

from __future__ import annotations

import os

from rlaif_jax import workdir as run_dir
from rlaif_jax.models.setup import build_model
from rlaif_jax.pipelines import sft as sft_pipeline


def initial_policy(config, workdir, mesh, rules):
    """The starting policy: `config.model`, or with `config.sft_first` the result of running `config.sft` into
    WORKDIR/sft first (skipped when WORKDIR/sft/hf_model exists, so a re-run resumes)."""
    if not config.sft_first:
        return build_model(config.model, mesh, rules, strict=config.mesh.get("strict", False))
    sft_dir = os.path.join(workdir, "sft")
    if not run_dir.exists(os.path.join(sft_dir, "hf_model", "config.json")):
        sft_pipeline.run(config.sft, sft_dir)
    model_config = config.model.copy_and_resolve_references()
    with model_config.unlocked():
        model_config.name = os.path.join(sft_dir, "hf_model")
    return build_model(model_config, mesh, rules, strict=config.mesh.get("strict", False))
