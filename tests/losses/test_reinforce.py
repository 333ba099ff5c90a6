"""REINFORCE (RLAIF App. F) and RLOO against hand computations; constants that carry no gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.reinforce import baseline_value_loss, reinforce_policy_loss, rlaif_returns, rloo_advantages

PAD = 1e4


def test_rlaif_returns_hand_case():
    score = jnp.array([1.0, -0.5])
    logprobs = jnp.array([[-1.0, -2.0, PAD], [-0.5, -PAD, PAD]])
    ref_logprobs = jnp.array([[-1.5, -1.0, -PAD], [-1.0, PAD, -PAD]])
    mask = jnp.array([[1, 1, 0], [1, 0, 0]])
    returns = rlaif_returns(score, logprobs, ref_logprobs, mask, beta=0.05)
    # Sequence KL: 0.5 - 1.0 = -0.5 and 0.5. (1 - 0.05)·1 + 0.05·0.5 = 0.975; 0.95·(-0.5) - 0.05·0.5 = -0.5.
    np.testing.assert_allclose(np.asarray(returns), [0.975, -0.5], rtol=1e-6)
    grads = jax.grad(lambda lp: jnp.sum(rlaif_returns(score, lp, ref_logprobs, mask, beta=0.05)))(logprobs)
    np.testing.assert_array_equal(np.asarray(grads), 0.0)  # a return is a constant for the policy gradient


def test_reinforce_policy_loss_hand_case_and_gradient():
    logprobs = jnp.array([[-1.0, -2.0, PAD], [-0.5, -PAD, jnp.inf]])
    advantages = jnp.array([2.0, -1.0])
    mask = jnp.array([[1, 1, 0], [1, 0, 0]])
    loss = reinforce_policy_loss(logprobs, advantages, mask)
    # -2·(-1 - 2) = 6; -(-1)·(-0.5) = -0.5.
    np.testing.assert_allclose(np.asarray(loss), [6.0, -0.5], rtol=1e-6)
    grads = jax.grad(lambda lp: jnp.sum(reinforce_policy_loss(lp, advantages, mask)))(logprobs)
    np.testing.assert_array_equal(np.asarray(grads), [[-2.0, -2.0, 0.0], [1.0, 0.0, 0.0]])
    advantage_grads = jax.grad(lambda a: jnp.sum(reinforce_policy_loss(logprobs, a, mask)))(advantages)
    np.testing.assert_array_equal(np.asarray(advantage_grads), 0.0)


def test_baseline_value_loss_hand_case():
    values, returns = jnp.array([1.0, 0.0]), jnp.array([3.0, -1.0])
    np.testing.assert_allclose(np.asarray(baseline_value_loss(values, returns)), [2.0, 0.5], rtol=1e-6)
    value_grads = jax.grad(lambda v: jnp.sum(baseline_value_loss(v, returns)))(values)
    np.testing.assert_allclose(np.asarray(value_grads), [-2.0, 1.0], rtol=1e-6)  # V - R
    return_grads = jax.grad(lambda r: jnp.sum(baseline_value_loss(values, r)))(returns)
    np.testing.assert_array_equal(np.asarray(return_grads), 0.0)


def test_rloo_advantages_hand_case():
    rewards = jnp.array([1.0, 2.0, 3.0, 10.0, 10.0, 4.0])  # two prompts, three samples each, prompt-major
    # Prompt 0: 1 - 2.5, 2 - 2, 3 - 1.5. Prompt 1: 10 - 7, 10 - 7, 4 - 10.
    advantages = rloo_advantages(rewards, num_samples_per_prompt=3)
    np.testing.assert_allclose(np.asarray(advantages), [-1.5, 0.0, 1.5, 3.0, 3.0, -6.0], rtol=1e-6)
    pair = rloo_advantages(jnp.array([1.0, 3.0]), 2)  # k may also be passed positionally
    np.testing.assert_allclose(np.asarray(pair), [-2.0, 2.0], rtol=1e-6)
    same = rloo_advantages(jnp.full((4,), 0.7), num_samples_per_prompt=4)  # zero-variance group: no signal
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-7)


def test_rloo_rejects_bad_group_sizes():
    with pytest.raises(ValueError, match="must be >= 2"):
        rloo_advantages(jnp.ones(4), num_samples_per_prompt=1)
    with pytest.raises(ValueError, match=r"num_prompts \* 3"):
        rloo_advantages(jnp.ones(4), num_samples_per_prompt=3)


def test_bfloat16_and_extreme_values_stay_finite():
    score = jnp.array([PAD, -PAD], jnp.bfloat16)
    logprobs = jnp.array([[-PAD, 0.0], [0.0, -PAD]], jnp.bfloat16)
    ref_logprobs = jnp.array([[0.0, -PAD], [-PAD, 0.0]], jnp.bfloat16)
    mask = jnp.array([[1, 1], [1, 1]])
    returns = rlaif_returns(score, logprobs, ref_logprobs, mask, beta=0.05)
    advantages = rloo_advantages(returns, num_samples_per_prompt=2)
    loss = reinforce_policy_loss(logprobs, advantages, mask)
    grads = jax.grad(lambda lp: jnp.sum(reinforce_policy_loss(lp, advantages, mask)))(logprobs)
    values = baseline_value_loss(jnp.array([PAD, -PAD], jnp.bfloat16), returns)
    for array in (returns, advantages, loss, values):
        assert array.dtype == jnp.float32 and np.isfinite(np.asarray(array)).all()
    assert np.isfinite(np.asarray(grads, np.float32)).all()
