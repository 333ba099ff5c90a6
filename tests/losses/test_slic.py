"""SLiC-HF (Zhao et al. 2023 eq. 3/4) against hand-computed values, and its adapter against the pure loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.logprobs import sequence_logprobs
from rlaif_jax.losses.slic import slic_loss, slic_loss_fn

PROMPT = 3


def test_slic_margin_and_regulariser_by_hand():
    chosen = jnp.array([-2.0, -1.0, -5.0])
    rejected = jnp.array([-2.5, -3.0, -4.0])
    target_nll = jnp.array([3.0, 4.0, 0.5])
    loss = slic_loss(chosen, rejected, target_nll, margin=1.0, regularization_weight=0.1)
    # max(0, 1 - 0.5) + 0.3; max(0, 1 - 2) + 0.4 (margin met: only the regulariser); max(0, 1 + 1) + 0.05
    np.testing.assert_allclose(np.asarray(loss), [0.8, 0.4, 2.05], rtol=1e-6)
    no_reg = slic_loss(chosen, rejected, target_nll, margin=2.0, regularization_weight=0.0)
    np.testing.assert_allclose(np.asarray(no_reg), [1.5, 0.0, 3.0], rtol=1e-6)


def test_bfloat16_margins_of_1e4_stay_finite():
    big = jnp.array([1e4, -1e4], jnp.bfloat16)
    loss = slic_loss(big, -big, jnp.array([1e4, 0.0], jnp.bfloat16), margin=1.0, regularization_weight=0.5)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(loss), [5000.0, 1.0 + 2e4], rtol=1e-2)


def groups(seed: int, num_pairs: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    batch = {}
    for prefix, length in (("chosen", 9), ("rejected", 6), ("target", 8)):
        tokens = rng.integers(3, 128, (num_pairs, length)).astype(np.int32)
        lengths = rng.integers(PROMPT + 1, length + 1, num_pairs)
        positions = np.arange(length)[None]
        attention = positions < lengths[:, None]
        batch[f"{prefix}_tokens"] = np.where(attention, tokens, 0)
        batch[f"{prefix}_attention_mask"] = attention
        batch[f"{prefix}_loss_mask"] = attention & (positions >= PROMPT)
    return batch


@pytest.fixture(scope="module")
def lm(make_tiny_lm):
    return make_tiny_lm(seed=4)


def test_adapter_is_slic_loss_on_sequence_logprobs(lm):
    batch = groups(0)
    logps = jax.jit(sequence_logprobs, static_argnums=0)
    chosen, rejected, target = (
        logps(lm.module, lm.params, *(batch[f"{prefix}_{key}"] for key in ("tokens", "attention_mask", "loss_mask")))[0]
        for prefix in ("chosen", "rejected", "target")
    )
    margin = float(jnp.median(chosen - rejected)) + 1.0  # some pairs inside the margin, some past it
    loss_fn = slic_loss_fn(lm.module, margin=margin, regularization_weight=0.2)
    (loss_sum, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(lm.params, batch, None, None)
    expected = slic_loss(chosen, rejected, -target, margin=margin, regularization_weight=0.2)
    np.testing.assert_allclose(float(loss_sum), float(jnp.sum(expected)), rtol=1e-5)
    assert all(float(count) == 3.0 for _, count in metrics.values())
    np.testing.assert_allclose(float(metrics["target_nll"][0]), -float(jnp.sum(target)), rtol=1e-5)
    np.testing.assert_allclose(
        float(metrics["rank_loss"][0]), float(jnp.sum(jnp.maximum(0.0, margin - chosen + rejected))), rtol=1e-5
    )
    assert float(metrics["accuracy"][0]) == float(jnp.sum(chosen > rejected))
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0.0


def test_adapter_names_a_missing_target(lm):
    batch = groups(1)
    del batch["target_tokens"]
    with pytest.raises(KeyError, match="'target_tokens'"):
        slic_loss_fn(lm.module, margin=1.0, regularization_weight=0.1)(lm.params, batch, None, None)
