"""PPO math against hand computations and a plain-Python GAE; padding that cannot leak; the step-0 invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses import ppo
from rlaif_jax.losses.logprobs import masked_mean

PAD = 1e4


def python_gae(rewards, values, mask, gamma, lam):
    """Reference GAE, one row and one position at a time; masked positions are skipped, not treated as steps."""
    advantages = np.zeros_like(rewards, dtype=np.float64)
    for row in range(rewards.shape[0]):
        next_value, next_advantage = 0.0, 0.0
        for t in reversed(range(rewards.shape[1])):
            if not mask[row, t]:
                continue
            delta = rewards[row, t] + gamma * next_value - values[row, t]
            advantages[row, t] = delta + gamma * lam * next_advantage
            next_value, next_advantage = values[row, t], advantages[row, t]
    return advantages, np.where(mask, advantages + values, 0.0)


def test_gae_hand_case_no_discount():
    # γ = λ = 1: A_t = (sum of rewards from t) - V_t; the return is the reward-to-go, 1 at every token.
    advantages, returns = ppo.gae(
        jnp.array([[0.0, 0.0, 1.0, PAD]]),
        jnp.array([[0.5, 0.25, 0.125, -PAD]]),
        jnp.array([[1, 1, 1, 0]]),
        gamma=1.0,
        lam=1.0,
    )
    np.testing.assert_allclose(np.asarray(advantages), [[0.5, 0.75, 0.875, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(returns), [[1.0, 1.0, 1.0, 0.0]], rtol=1e-6)


def test_gae_matches_python_loop_with_short_and_gapped_rows():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(4, 8)).astype(np.float32)
    values = rng.normal(size=(4, 8)).astype(np.float32)
    mask = np.array(
        [
            [1, 1, 1, 1, 1, 1, 1, 1],  # full response
            [1, 1, 1, 0, 0, 0, 0, 0],  # shorter response, right padding
            [0, 0, 1, 1, 1, 1, 0, 0],  # prompt masked, then response, then padding
            [1, 1, 0, 0, 1, 1, 0, 1],  # gaps: the recursion must jump to the next unmasked token
        ]
    )
    rewards_padded = np.where(mask, rewards, PAD)
    values_padded = np.where(mask, values, -PAD)
    advantages, returns = ppo.gae(
        jnp.asarray(rewards_padded), jnp.asarray(values_padded), jnp.asarray(mask), gamma=0.9, lam=0.8
    )
    expected_advantages, expected_returns = python_gae(rewards, values, mask, 0.9, 0.8)
    np.testing.assert_allclose(np.asarray(advantages), expected_advantages, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(returns), expected_returns, rtol=1e-5, atol=1e-6)
    # A gapped row gives the same numbers as its tokens packed together.
    packed, _ = ppo.gae(
        jnp.asarray(rewards[3:, mask[3] == 1]),
        jnp.asarray(values[3:, mask[3] == 1]),
        jnp.ones((1, 5)),
        gamma=0.9,
        lam=0.8,
    )
    np.testing.assert_array_equal(np.asarray(advantages)[3, mask[3] == 1], np.asarray(packed)[0])


def test_whiten_hand_case_and_shift_mean():
    values, mask = jnp.array([[1.0, 2.0, 3.0, 4.0, PAD]]), jnp.array([[1, 1, 1, 1, 0]])
    # mean 2.5; unbiased variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5 / 3.
    scale = 1.0 / np.sqrt(5.0 / 3.0 + 1e-8)
    expected = np.array([-1.5, -0.5, 0.5, 1.5]) * scale
    np.testing.assert_allclose(np.asarray(ppo.whiten(values, mask)), [[*expected, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(ppo.whiten(values, mask, shift_mean=False)), [[*(expected + 2.5), 0.0]], rtol=1e-6
    )


# Eight dyadic values (exact float sums in any order): padded and unpadded runs must agree bit for bit.
VALID = np.array([0.5, -1.25, 2.0, 0.75, -0.5, 1.5, 3.0, -2.0], np.float32)
REF_VALID = np.array([-0.25, -1.0, 1.5, 0.75, -1.5, 1.0, 2.0, -2.5], np.float32)
PAD_MASK = np.array([[1, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]])  # one right-padded row, one left-padded row


def padded(valid, pad_values):
    out = np.array(pad_values, np.float32).reshape(PAD_MASK.shape)
    out[PAD_MASK == 1] = valid
    return jnp.asarray(out)


@pytest.mark.parametrize("pad_sign", [1.0, -1.0])
def test_masked_whiten_mean_and_kl_ignore_pad_values(pad_sign):
    pads = pad_sign * PAD * np.array([1, -1, 1, -1, 1, -1] * 2)
    ones = jnp.ones((1, 8))
    whitened = ppo.whiten(padded(VALID, pads), PAD_MASK)
    np.testing.assert_array_equal(np.asarray(whitened)[PAD_MASK == 1], np.asarray(ppo.whiten(VALID[None], ones))[0])
    np.testing.assert_array_equal(np.asarray(whitened)[PAD_MASK == 0], 0.0)
    assert float(masked_mean(padded(VALID, pads), PAD_MASK)) == float(jnp.mean(VALID))
    logprobs, ref_logprobs = padded(VALID, pads), padded(REF_VALID, -pads)
    for kind in ("k1", "k2", "k3", "abs"):
        unpadded = ppo.kl_penalty(jnp.asarray(VALID), jnp.asarray(REF_VALID), kind=kind)
        with_mask = ppo.kl_penalty(logprobs, ref_logprobs, kind=kind, mask=PAD_MASK)
        np.testing.assert_array_equal(np.asarray(with_mask)[PAD_MASK == 1], np.asarray(unpadded))
        np.testing.assert_array_equal(np.asarray(with_mask)[PAD_MASK == 0], 0.0)
        without_mask = ppo.kl_penalty(logprobs, ref_logprobs, kind=kind)  # pads meet the log-ratio: must stay finite
        assert np.isfinite(np.asarray(without_mask)).all()
        padded_mean = float(masked_mean(without_mask, PAD_MASK))
        if kind == "k3":  # not dyadic, so allow for a different summation order
            np.testing.assert_allclose(padded_mean, float(jnp.mean(unpadded)), rtol=1e-6)
        else:
            assert padded_mean == float(jnp.mean(unpadded))


def test_kl_estimators_hand_values():
    logprobs, ref_logprobs = jnp.array([[-1.0, -2.0]]), jnp.array([[-2.0, -1.0]])
    np.testing.assert_allclose(np.asarray(ppo.kl_penalty(logprobs, ref_logprobs, kind="k1")), [[1.0, -1.0]])
    np.testing.assert_allclose(np.asarray(ppo.kl_penalty(logprobs, ref_logprobs, kind="k2")), [[0.5, 0.5]])
    np.testing.assert_allclose(np.asarray(ppo.kl_penalty(logprobs, ref_logprobs, kind="abs")), [[1.0, 1.0]])
    # k3 = (ρ - 1) - log ρ with log ρ = -1 and +1: e^-1 - 1 + 1 and e - 1 - 1.
    np.testing.assert_allclose(
        np.asarray(ppo.kl_penalty(logprobs, ref_logprobs, kind="k3")), [[0.36787944, 0.71828183]], rtol=1e-6
    )
    with pytest.raises(ValueError, match="unknown kind 'k4'"):
        ppo.kl_penalty(logprobs, ref_logprobs, kind="k4")


def test_k3_is_nonnegative_and_finite():
    rng = np.random.default_rng(2)
    logprobs = jnp.asarray(rng.normal(size=(8, 64)) * 5.0, jnp.float32)
    ref_logprobs = jnp.asarray(rng.normal(size=(8, 64)) * 5.0, jnp.float32)
    assert float(jnp.min(ppo.kl_penalty(logprobs, ref_logprobs, kind="k3"))) >= 0.0
    extreme = jnp.array([[PAD, -PAD]], jnp.bfloat16)
    k3 = ppo.kl_penalty(extreme, -extreme, kind="k3")
    grads = jax.grad(lambda x: jnp.sum(ppo.kl_penalty(x, -extreme, kind="k3")))(extreme)
    assert np.isfinite(np.asarray(k3)).all() and float(jnp.min(k3)) >= 0.0
    assert np.isfinite(np.asarray(grads, np.float32)).all()


def test_per_token_rewards_put_score_on_last_unmasked_token():
    mask = jnp.array(
        [
            [0, 1, 1, 1, 0, 0],  # prompt, response, EOS at index 3, then padding
            [0, 0, 1, 1, 1, 1],  # runs to the end of the buffer
            [1, 0, 0, 0, 0, 0],  # a one-token response
            [0, 0, 0, 0, 0, 0],  # empty: no reward anywhere
        ]
    )
    score = jnp.array([2.0, 3.0, 5.0, 7.0])
    only_score = ppo.per_token_rewards(score, jnp.zeros((4, 6)), mask, kl_coef=0.1)
    for row, index in enumerate([3, 5, 0]):
        np.testing.assert_array_equal(np.flatnonzero(np.asarray(only_score)[row]), [index])
        assert float(only_score[row, index]) == float(score[row])
    np.testing.assert_array_equal(np.asarray(only_score)[3], 0.0)
    kl = jnp.where(mask == 1, 0.5, PAD)  # padding KL must not leak
    rewards = ppo.per_token_rewards(score, kl, mask, kl_coef=0.1)
    np.testing.assert_allclose(np.asarray(rewards)[0], [0.0, -0.05, -0.05, 2.0 - 0.05, 0.0, 0.0], rtol=1e-6)


def test_ppo_step_zero_is_neutral():
    rng = np.random.default_rng(3)
    logprobs = jnp.asarray(-rng.exponential(size=(3, 5)), jnp.float32)
    advantages = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0]])
    loss, clipped, ratio = ppo.policy_loss(logprobs, logprobs, advantages, mask, clip_ratio=0.2)
    np.testing.assert_array_equal(np.asarray(ratio), 1.0)
    assert int(jnp.sum(clipped)) == 0  # clip fraction 0
    np.testing.assert_array_equal(np.asarray(loss), np.where(mask, -np.asarray(advantages), 0.0))
    for kind in ("k1", "k3"):
        np.testing.assert_array_equal(np.asarray(ppo.kl_penalty(logprobs, logprobs, kind=kind, mask=mask)), 0.0)


def test_policy_loss_clipping_hand_cases():
    # ratios 1.5, 1.5, 0.5, 0.5 against advantages +1, -1, +1, -1 with ε = 0.2.
    old_logprobs = jnp.full((1, 4), -1.0)
    logprobs = old_logprobs + jnp.log(jnp.array([[1.5, 1.5, 0.5, 0.5]]))
    advantages = jnp.array([[1.0, -1.0, 1.0, -1.0]])
    loss, clipped, ratio = ppo.policy_loss(logprobs, old_logprobs, advantages, jnp.ones((1, 4)), clip_ratio=0.2)
    np.testing.assert_allclose(np.asarray(ratio), [[1.5, 1.5, 0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loss), [[-1.2, 1.5, -0.5, 0.8]], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(clipped), [[True, False, False, True]])


def test_value_loss_hand_cases():
    values = jnp.array([[1.0, 1.0, 0.0, PAD]])
    old_values = jnp.array([[0.5, 0.9, 1.0, -PAD]])
    returns = jnp.array([[2.0, 0.0, 0.0, PAD]])
    loss = ppo.value_loss(values, old_values, returns, jnp.array([[1, 1, 1, 0]]), clip_range=0.2)
    # clipped values 0.7, 1.0, 0.8: ½·max(1, 1.69), ½·max(1, 1), ½·max(0, 0.64).
    np.testing.assert_allclose(np.asarray(loss), [[0.845, 0.5, 0.32, 0.0]], rtol=1e-6)


def test_entropy_from_logits():
    logits = jnp.array([[[0.0, 0.0, 0.0, 0.0], [0.0, -jnp.inf, -jnp.inf, -jnp.inf], [1.0, 2.0, 3.0, -jnp.inf]]])
    entropy = ppo.entropy_from_logits(logits.astype(jnp.bfloat16))
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert entropy.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(entropy), [[np.log(4.0), 0.0, -(p * np.log(p)).sum()]], rtol=1e-6)


def test_explained_variance():
    returns, mask = jnp.array([[1.0, 2.0, 3.0, 4.0, PAD]]), jnp.array([[1, 1, 1, 1, 0]])
    # residual [0, 0, 0, 1]: Var 0.1875 against Var[R] = 1.25.
    np.testing.assert_allclose(
        float(ppo.explained_variance(jnp.array([[1.0, 2.0, 3.0, 3.0, -PAD]]), returns, mask)), 0.85, rtol=1e-6
    )
    assert float(ppo.explained_variance(returns, returns, mask)) == 1.0
    assert float(ppo.explained_variance(jnp.full((1, 5), 2.5), returns, mask)) == 0.0
    assert float(ppo.explained_variance(returns, jnp.ones((1, 5)), mask)) == 0.0  # constant returns


def test_kl_controllers():
    assert ppo.fixed_kl_coef(0.02).dtype == jnp.float32
    np.testing.assert_allclose(float(ppo.fixed_kl_coef(0.02)), 0.02, rtol=1e-7)
    # KL 12 vs target 6: error clipped to +0.2; 256 steps / horizon 10000 -> 0.1 · (1 + 0.2 · 0.0256).
    up = ppo.adaptive_kl_update(0.1, 12.0, target=6.0, horizon=10000, num_steps=256)
    np.testing.assert_allclose(float(up), 0.100512, rtol=1e-6)
    # KL 5.4 vs target 6: error -0.1 -> 0.1 · (1 - 0.1 · 0.0256).
    down = ppo.adaptive_kl_update(0.1, 5.4, target=6.0, horizon=10000, num_steps=256)
    np.testing.assert_allclose(float(down), 0.099744, rtol=1e-6)
