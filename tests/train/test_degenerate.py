"""Degenerate batches warn once with their step (train/degenerate.py); a non-finite-step error names the first one."""

import logging

import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax import config_defaults, sharding
from rlaif_jax.data import batching
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.train.degenerate import DegenerateBatchWarnings
from rlaif_jax.train.loop import NonFiniteLossError, fit


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_each_kind_warns_once_with_its_first_step(caplog):
    warnings = DegenerateBatchWarnings()
    with caplog.at_level(logging.WARNING):
        warnings.check_steps([1, 2, 3, 4], finite=[1.0, 0.0, 1.0, 0.0], counts=[5.0, 5.0, 0.0, 0.0])
        warnings.check_steps([5], finite=[0.0], counts=[0.0])
        assert warnings.check_rewards(6, np.array([1.0, 1.0, 0.0, 1.0]), group_size=2) == 1
        assert warnings.check_rewards(7, np.array([2.0, 2.0, 3.0, 3.0]), group_size=2) == 2
        assert warnings.check_rewards(8, np.full(4, np.nan), group_size=None) == 0
    assert warnings.first == {"nonfinite": 2, "empty": 3, "zero_variance_groups": 6, "rewards_missing": 8}
    messages = _warnings(caplog)
    assert len(messages) == 4
    assert messages[0].startswith("step 2: non-finite loss or gradient")
    assert messages[1].startswith("step 3: the batch has nothing to score")
    assert messages[2] == "step 6: 1 of 2 groups have all 2 rewards equal: their advantages are 0"
    assert messages[3] == "step 8: all 4 rewards of the rollout are missing (NaN or inf)"


def test_fit_warns_of_an_all_masked_batch_and_names_the_first_nonfinite_step(tmp_path, caplog):
    config = config_defaults.load_config_file("sft", "tiny")
    config.train.update(batch_size=1, log_every=4, max_nonfinite_steps=0)
    config.checkpoint.every_steps = 100
    config.mesh.num_devices = 1  # batch size 1
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    lm = build_model(config.model, mesh, rules)
    rows, seq = 4, 8
    tokens = np.tile(np.arange(10, 10 + seq, dtype=np.int32), (rows, 1))
    loss_mask = np.ones((rows, seq), bool)
    loss_mask[1] = False  # row 1: nothing to score
    weight = np.ones(rows, np.float32)
    weight[2] = np.nan  # row 2: a non-finite loss
    arrays = {"tokens": tokens, "attention_mask": np.ones((rows, seq), bool), "loss_mask": loss_mask, "weight": weight}
    order = [int(batching.batch_indices(rows, 1, step, config.data.seed)[0]) for step in range(8)]
    first_empty, first_nan = order.index(1) + 1, order.index(2) + 1
    sft = sft_loss_fn(lm.module)

    def weighted_loss(params, batch, rng, frozen):
        loss_sum, metrics = sft(params, batch, rng, frozen)
        loss_sum = loss_sum * jnp.mean(batch["weight"])
        return loss_sum, {**metrics, "loss": (loss_sum, metrics["loss"][1])}

    with caplog.at_level(logging.WARNING), pytest.raises(NonFiniteLossError) as error:
        fit(
            lm=lm,
            loss_fn=weighted_loss,
            arrays=arrays,
            config=config,
            workdir=str(tmp_path),
            num_steps=8,
            mesh=mesh,
            rules=rules,
            desc="degenerate",
        )
    found_at = 4 if first_nan <= 4 else 8  # the log step that found it
    assert str(error.value).startswith(f"step {found_at}: step {first_nan} was the first non-finite one")
    messages = _warnings(caplog)
    assert f"step {first_empty}: the batch has nothing to score (every row or token masked): update skipped" in messages
    assert f"step {first_nan}: non-finite loss or gradient: the update was skipped" in messages
    assert sum("nothing to score" in m for m in messages) == 1  # once, though later steps repeat it
