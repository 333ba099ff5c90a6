"""The `rlcd_pairs` job: RLCD's contrast pairs (Yang et al. 2023 §2), and with `config.rlcd.rescore` their
RLCD-Rescore relabelling.

For each train prompt of `config.task` one affix pair is drawn (the same-index rule), the policy `config.model` is
sampled on p+ and p-, each side post-processed (retried up to `rlcd.max_attempts`), and pairs with both sides are
kept, p+'s output as `chosen`. Writes WORKDIR/pairs.jsonl {prompt, chosen, rejected, positive_prompt,
negative_prompt, affix_index}, pairs_stats.json (prompts too long, sides rejected, seconds per sample) and, with
rescore, pairs_rescored.jsonl (chosen = the policy's pick under the A/B scoring prompt, `preference` its probability)
and rescore_stats.json. Outputs already there are kept (a re-run resumes at the first missing one).
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np

from rlaif_jax import sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data.jsonl import write_jsonl
from rlaif_jax.feedback import rlcd
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.pipelines.rlcd_stages import check_settings, contrast_pairs, read_pair_rows, task_prompt_texts

PAIRS_FILE = "pairs.jsonl"
RESCORED_FILE = "pairs_rescored.jsonl"


def check_config(config) -> None:
    """Raises ValueError naming the key of a task / rlcd setting the job cannot use (before anything runs)."""
    check_settings(config)


def run(config, workdir: str) -> dict:
    """Writes the pairs (and rescored pairs); returns the stats of what it wrote this time."""
    check_config(config)
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    loaded = {}

    def policy():
        if "lm" not in loaded:
            loaded["lm"] = build_model(config.model, mesh, rules, strict=config.mesh.get("strict", False))
        return loaded["lm"]

    results = {}
    pairs_path = os.path.join(workdir, PAIRS_FILE)
    if not run_dir.exists(pairs_path):
        prompts = task_prompt_texts(config.task, "train", config.seed, dialogue=config.rlcd.prompt_format == "dialogue")
        num_pairs = config.rlcd.num_pairs or len(prompts)
        prompts = [prompts[i % len(prompts)] for i in range(num_pairs)]
        rng = jax.random.fold_in(jax.random.key(config.seed), 1)
        rows, stats = contrast_pairs(policy(), prompts, config, seed=config.seed, rng=rng)
        if not rows:
            raise RuntimeError(f"no RLCD pair survived post-processing ({stats}); see config.rlcd.postprocess")
        write_jsonl(rows, pairs_path)
        run_dir.write_json(workdir, "pairs_stats.json", stats)
        logging.info("rlcd: %d pairs (%.2f s per sample)", stats["num_pairs"], stats["seconds_per_sample"])
        results["pairs"] = stats
    rescored_path = os.path.join(workdir, RESCORED_FILE)
    if config.rlcd.rescore and not run_dir.exists(rescored_path):
        from rlaif_jax.feedback import choice_probabilities

        train_rows = read_pair_rows(pairs_path)
        positive_first = np.random.default_rng([config.seed, 11]).random(len(train_rows)) < 0.5
        texts = rlcd.rescore_prompts(train_rows, rlcd.affix_set(config.rlcd.affixes), positive_first)
        start = time.perf_counter()
        probabilities = choice_probabilities(
            policy(), texts, choices=("A", "B"), batch_size=config.rlcd.rescore_batch_size
        )
        rescored = rlcd.rescored_rows(train_rows, probabilities, positive_first)
        write_jsonl(rescored, rescored_path)
        flipped = float(np.mean([row["positive_win_prob"] < 0.5 for row in rescored]))
        results["rescore"] = {"flipped": flipped, "seconds_per_pair": (time.perf_counter() - start) / len(texts)}
        run_dir.write_json(workdir, "rescore_stats.json", results["rescore"])
    if not results:  # everything was there: report what the files hold
        results["pairs"] = {"num_pairs": len(read_pair_rows(pairs_path))}
    return results
