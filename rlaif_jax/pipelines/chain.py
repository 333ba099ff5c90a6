"""The `chain` job: an experiment's stages run in order by `rlaif_jax.chain.run_chain` (configs/rlaif.py, ...).
Each stage runs in WORKDIR/STAGE; the chain ends with WORKDIR/report.md and its plots."""

from __future__ import annotations

from rlaif_jax.chain import run_chain


def run(config, workdir: str) -> dict:
    """Runs (or skips, when done) every stage of `config.chain.order`; returns {stage: results}."""
    return run_chain(config, workdir)
