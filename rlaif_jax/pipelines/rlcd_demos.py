"""The `rlcd_demos` job (RLCD chain, tiny toy task): demonstrations whose quality follows the toy affixes, so that
SFT on them stands in for a pretrained LM that understands "(accurate)" / "(careless)". Writes
WORKDIR/sft_data.jsonl {prompt, response} and config.json; a re-run with the file there does nothing."""

from __future__ import annotations

import os

from rlaif_jax import workdir as run_dir
from rlaif_jax.data.jsonl import write_jsonl
from rlaif_jax.feedback import rlcd
from rlaif_jax.pipelines.rlcd_stages import toy_affix_demonstrations

OUTPUT_FILE = "sft_data.jsonl"


def run(config, workdir: str) -> str:
    """Writes `config.num_rows` demonstrations (a third each: no affix, positive, negative, with letter noise
    `config.noise`) for the affix set `config.affixes`; returns the file's path."""
    if len(config.noise) != 3:
        raise ValueError(f"config.noise={tuple(config.noise)}: expected 3 values (no affix, positive, negative)")
    run_dir.write_config(config, workdir)
    path = os.path.join(workdir, OUTPUT_FILE)
    if not run_dir.exists(path):
        rows = toy_affix_demonstrations(
            config.num_rows, seed=config.seed, affixes=rlcd.affix_set(config.affixes), noise=config.noise
        )
        write_jsonl(rows, path)
    return path
