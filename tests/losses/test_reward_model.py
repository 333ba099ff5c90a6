"""Reward-model losses against hand computations; last-token reads that padding side and batch size cannot change."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.reward_model import (
    bradley_terry_loss,
    last_token_index,
    pairwise_accuracy,
    ranking_loss,
    reward_bias,
    rewards_at_last_token,
    soft_label_loss,
)

ranking_loss_jit = jax.jit(ranking_loss)  # one compile instead of dozens of eager ops: keeps each test well under 1 s


def softplus(x):
    return np.log1p(np.exp(x))  # -log σ(-x)


def test_bradley_terry_matches_hand_computation():
    loss = bradley_terry_loss(jnp.array([1.0, 0.0, 2.0]), jnp.array([0.0, 2.0, 2.0]))
    # -log σ(1) = log(1 + e^-1); -log σ(-2) = log(1 + e^2); -log σ(0) = log 2.
    np.testing.assert_allclose(np.asarray(loss), [0.31326169, 2.12692801, np.log(2.0)], rtol=1e-6)


def test_bradley_terry_margin_per_example():
    loss = bradley_terry_loss(jnp.array([1.0, 1.0]), jnp.array([0.0, 0.0]), margin=jnp.array([0.5, 3.0]))
    # -log σ(1 - 0.5) and -log σ(1 - 3).
    np.testing.assert_allclose(np.asarray(loss), [softplus(-0.5), softplus(2.0)], rtol=1e-6)
    scalar = bradley_terry_loss(jnp.array([1.0]), jnp.array([0.0]), margin=0.5)
    np.testing.assert_allclose(np.asarray(scalar), [0.47407698], rtol=1e-6)


def test_ranking_loss_matches_hand_computation():
    # K = 3 in rank order, rewards 3 > 1 > 0: pairs (0,1), (0,2), (1,2) with differences 2, 3, 1.
    loss = ranking_loss_jit(jnp.array([[3.0, 1.0, 0.0]]), jnp.ones((1, 3)))
    expected = (softplus(-2.0) + softplus(-3.0) + softplus(-1.0)) / 3.0
    np.testing.assert_allclose(np.asarray(loss), [expected], rtol=1e-6)


def test_ranking_loss_is_mean_of_pairwise_bradley_terry():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(2, 5)).astype(np.float32) * 2.0
    loss = ranking_loss_jit(jnp.asarray(rewards), jnp.ones((2, 5)))
    for row in range(2):
        pairs = list(itertools.combinations(range(5), 2))
        assert len(pairs) == 10  # C(5, 2)
        chosen = jnp.array([rewards[row, i] for i, _ in pairs])
        rejected = jnp.array([rewards[row, j] for _, j in pairs])
        np.testing.assert_allclose(float(loss[row]), float(jnp.mean(bradley_terry_loss(chosen, rejected))), rtol=1e-6)


def test_ranking_loss_uses_only_valid_responses():
    pad = 1e4
    rewards = jnp.array([[2.0, pad, 1.0, -1.0], [1.0, -pad, jnp.inf, jnp.nan], [pad, -pad, 0.0, 0.0]])
    valid = jnp.array([[1, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    loss = ranking_loss_jit(rewards, valid)
    # Row 0: responses 0, 2, 3 -> differences 1, 3, 2. Rows with < 2 valid responses: 0.
    expected = (softplus(-1.0) + softplus(-3.0) + softplus(-2.0)) / 3.0
    np.testing.assert_allclose(np.asarray(loss), [expected, 0.0, 0.0], rtol=1e-6)
    grads = jax.jit(jax.grad(lambda r: jnp.sum(ranking_loss(r, valid))))(rewards)
    assert np.isfinite(np.asarray(grads)).all()


def test_soft_label_loss_matches_hand_computation():
    loss = soft_label_loss(jnp.array([1.0, 0.0, 1.0]), jnp.array([0.0, 0.0, 0.0]), jnp.array([0.6, 0.5, 1.0]))
    # -(0.6 log σ(1) + 0.4 log σ(-1)); equal rewards at p = 0.5: log 2; p = 1 is Bradley–Terry.
    first = 0.6 * softplus(-1.0) + 0.4 * softplus(1.0)
    np.testing.assert_allclose(np.asarray(loss), [first, np.log(2.0), softplus(-1.0)], rtol=1e-6)
    np.testing.assert_allclose(first, 0.71326169, rtol=1e-6)


def test_pairwise_accuracy_and_ties():
    accuracy = pairwise_accuracy(jnp.array([2.0, 1.0, 1.0]), jnp.array([1.0, 1.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(accuracy), [1.0, 0.5, 0.0])


def test_reward_bias_is_demonstration_mean():
    bias = reward_bias(jnp.array([1.0, 2.0, 3.0, 6.0], jnp.bfloat16))
    assert bias.dtype == jnp.float32 and float(bias) == 3.0


def test_last_token_index_left_right_and_empty():
    mask = jnp.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(last_token_index(mask)), [2, 4, 4, 0])
    assert last_token_index(mask).dtype == jnp.int32


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_rewards_at_last_token_ignore_pad_side_and_batch_size(batch_size):
    rng = np.random.default_rng(1)
    seq = 7
    lengths = [3, 7, 1, 5, 2, 6, 4, 7]
    sequences = [rng.normal(size=n).astype(np.float32) for n in lengths]
    expected = np.array([s[-1] for s in sequences])  # the score at each sequence's last real token
    results = []
    for side in ("right", "left"):
        scores = np.full((batch_size, seq), 1e4, np.float32)
        mask = np.zeros((batch_size, seq), np.int32)
        for row in range(batch_size):
            n = lengths[row]
            span = slice(0, n) if side == "right" else slice(seq - n, seq)
            scores[row, span], mask[row, span] = sequences[row], 1
        results.append(np.asarray(rewards_at_last_token(jnp.asarray(scores), jnp.asarray(mask))))
    np.testing.assert_allclose(results[0], expected[:batch_size], atol=1e-6, rtol=0)
    np.testing.assert_allclose(results[1], results[0], atol=1e-6, rtol=0)


BF16_LOSSES = {
    "bradley_terry": lambda c, r: bradley_terry_loss(c, r),
    "bradley_terry_margin": lambda c, r: bradley_terry_loss(c, r, margin=jnp.array([1e4, -1e4], jnp.bfloat16)),
    "soft_label": lambda c, r: soft_label_loss(c, r, jnp.array([0.3, 0.7])),
    "ranking": lambda c, r: ranking_loss(jnp.stack([c, r], axis=-1), jnp.ones((2, 2))),
}


@pytest.mark.parametrize("name", sorted(BF16_LOSSES))
def test_bfloat16_margins_of_1e4_stay_finite(name):
    loss_fn = BF16_LOSSES[name]
    high, low = jnp.array([1e4, -1e4], jnp.bfloat16), jnp.array([-1e4, 1e4], jnp.bfloat16)
    loss = jax.jit(loss_fn)(high, low)
    grads = jax.jit(jax.grad(lambda c: jnp.sum(loss_fn(c, low))))(high)
    assert loss.dtype == jnp.float32
    assert np.isfinite(np.asarray(loss)).all() and np.isfinite(np.asarray(grads, np.float32)).all()
    if name in ("bradley_terry", "ranking"):
        # The losing direction costs exactly the gap: 1e4 rounds to 9984 in bfloat16.
        np.testing.assert_array_equal(np.asarray(loss), [0.0, 2 * 9984.0])
