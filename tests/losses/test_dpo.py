"""DPO / cDPO / IPO / hinge against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.dpo import dpo_loss


def test_dpo_is_ln2_when_policy_equals_reference():
    logps = jnp.array([-3.0, -10.0, -0.5])
    loss, chosen, rejected = dpo_loss(logps, logps - 1.0, logps, logps - 1.0, beta=0.1)
    np.testing.assert_allclose(np.asarray(loss), np.log(2.0) * np.ones(3), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(chosen), 0.0)
    np.testing.assert_array_equal(np.asarray(rejected), 0.0)


def test_sigmoid_ipo_hinge_and_cdpo_by_hand():
    # h = (-1 - -2) - (-4 - -3) = 1 - (-1) = 2; beta = 0.5 -> beta * h = 1.
    args = (jnp.array([-1.0]), jnp.array([-4.0]), jnp.array([-2.0]), jnp.array([-3.0]))
    sigmoid, chosen, rejected = dpo_loss(*args, beta=0.5)
    np.testing.assert_allclose(np.asarray(sigmoid), [np.log1p(np.exp(-1.0))], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(chosen), [0.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(rejected), [-0.5], rtol=1e-6)
    ipo, _, _ = dpo_loss(*args, beta=0.5, loss_type="ipo")
    np.testing.assert_allclose(np.asarray(ipo), [(2.0 - 1.0) ** 2], rtol=1e-6)
    hinge, _, _ = dpo_loss(*args, beta=0.25, loss_type="hinge")
    np.testing.assert_allclose(np.asarray(hinge), [1.0 - 0.5], rtol=1e-6)
    cdpo, _, _ = dpo_loss(*args, beta=0.5, label_smoothing=0.2)
    expected = 0.8 * np.log1p(np.exp(-1.0)) + 0.2 * np.log1p(np.exp(1.0))
    np.testing.assert_allclose(np.asarray(cdpo), [expected], rtol=1e-6)


def test_bfloat16_margins_of_1e4_stay_finite():
    big = jnp.array([1e4, -1e4], jnp.bfloat16)
    zero = jnp.zeros(2, jnp.bfloat16)
    for loss_type in ("sigmoid", "ipo", "hinge"):
        loss, _, _ = dpo_loss(big, -big, zero, zero, beta=0.1, loss_type=loss_type)
        assert loss.dtype == jnp.float32 and np.isfinite(np.asarray(loss)).all(), loss_type


def test_unknown_loss_type_is_named():
    x = jnp.zeros(1)
    with pytest.raises(ValueError, match="loss_type='kto'"):
        dpo_loss(x, x, x, x, beta=0.1, loss_type="kto")
