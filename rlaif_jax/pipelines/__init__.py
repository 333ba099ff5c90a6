"""Pipelines: what `python -m rlaif_jax.main` runs. `config.job` names one; each module has `run(config, workdir)`."""

import importlib

# job name -> module with `run(config, workdir)`; imported only when chosen, so one job does not load the others.
PIPELINES = {
    "generate": "rlaif_jax.pipelines.generate",
    "sft": "rlaif_jax.pipelines.sft",
    "online_rl": "rlaif_jax.pipelines.online_rl",
    "reward_model": "rlaif_jax.pipelines.reward_model",
    "rlcd_demos": "rlaif_jax.pipelines.rlcd_demos",
    "rlcd_pairs": "rlaif_jax.pipelines.rlcd_pairs",
    "rlcd_agreement": "rlaif_jax.pipelines.rlcd_agreement",
    "ai_labels": "rlaif_jax.pipelines.ai_labels",
    "rest": "rlaif_jax.pipelines.rest",
    "win_rate": "rlaif_jax.pipelines.win_rate",
    "preference": "rlaif_jax.pipelines.preference",
    "best_of_n": "rlaif_jax.pipelines.best_of_n",
    "expert_iteration": "rlaif_jax.pipelines.expert_iteration",
    "conditional": "rlaif_jax.pipelines.conditional",
    "samples": "rlaif_jax.pipelines.samples",
    "chain": "rlaif_jax.pipelines.chain",
}


def run(config, workdir: str):
    """Runs the pipeline named by `config.job` in `workdir`."""
    if config.job not in PIPELINES:
        raise ValueError(f"config.job={config.job!r} is not a pipeline; known: {sorted(PIPELINES)}")
    return importlib.import_module(PIPELINES[config.job]).run(config, workdir)
