"""The `rlcd_agreement` job: how well an RLCD reward model agrees with a gold judge (RLCD chain, local tasks).

On fresh held-out prompts of `config.task` it draws RLCD contrast pairs and i.i.d. pairs (two samples of the plain
prompt: the pairs PPO's RM compares) from `config.model`, and scores both with the reward model
`config.agreement.reward_model` and the gold judge `config.agreement.gold_reward`; it also scores the training pairs'
construction labels (`config.agreement.train_pairs`) with the gold judge. Writes WORKDIR/rm_gold_agreement.json
(kept on a re-run).
"""

from __future__ import annotations

import os

from rlaif_jax import sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.pipelines.rlcd_stages import agreement_results, check_settings, read_pair_rows

OUTPUT_FILE = "rm_gold_agreement.json"


def check_config(config) -> None:
    """Raises ValueError naming the key of a setting the job cannot use (before anything runs)."""
    check_settings(config)
    if not config.agreement.gold_reward:
        raise ValueError("config.agreement.gold_reward is not set: the agreement stage needs a gold judge")


def run(config, workdir: str) -> dict:
    """Writes and returns rm_gold_agreement.json: {'iid', 'contrast', 'train_pairs', ...} agreement figures."""
    check_config(config)
    settings = config.agreement
    for key in ("reward_model", "train_pairs"):
        if not run_dir.exists(settings[key]):
            raise FileNotFoundError(f"config.agreement.{key}: no {settings[key]}")
    run_dir.write_config(config, workdir)

    def compute() -> dict:
        mesh = build_mesh(config)
        policy = build_model(
            config.model, mesh, sharding.normalize_rules(config.mesh.rules), strict=config.mesh.get("strict", False)
        )
        return agreement_results(config, policy, settings.reward_model, read_pair_rows(settings.train_pairs))

    return run_dir.cached_json(os.path.join(workdir, OUTPUT_FILE), compute)
