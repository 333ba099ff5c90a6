"""Pairwise reward-model accuracy on held-out pairs, ties reported and counted half."""

import pytest

from rlaif_jax.evaluation.rm_accuracy import pairwise_accuracy, reward_fn_accuracy
from rlaif_jax.rewards.gold import toy_rewards


def test_hand_case():
    # margins: +1 (right), 0 (tie), -0.2 (wrong), +4 (right)
    result = pairwise_accuracy([2, 1, 0.5, 3], [1, 1, 0.7, -1], num_resamples=0)
    assert result["accuracy"] == 0.625
    assert result["strict_accuracy"] == 0.5
    assert (result["correct"], result["ties"], result["wrong"], result["num_pairs"]) == (2, 1, 1, 4)
    assert result["mean_margin"] == pytest.approx(1.2)


def test_constant_reward_scores_one_half():
    assert pairwise_accuracy([0.3] * 5, [0.3] * 5)["accuracy"] == 0.5


def test_reward_function_on_texts():
    """The toy gold reward: 'aaaaaa' (1.0) beats 'aaabbb' (0.5), equal texts tie, 'ab' (1/6) loses to 'aa' (2/6)."""
    result = reward_fn_accuracy(
        toy_rewards, ["letter: a"] * 3, ["aaaaaa", "aaabbb", "ab"], ["aaabbb", "aaabbb", "aa"], num_resamples=0
    )
    assert (result["correct"], result["ties"], result["wrong"]) == (1, 1, 1)
    assert result["accuracy"] == 0.5
    assert result["mean_margin"] == pytest.approx((0.5 + 0 - 1 / 6) / 3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"pair 1 has a non-finite score: nan vs 0.0"):
        pairwise_accuracy([1.0, float("nan")], [0.0, 0.0])
    with pytest.raises(ValueError, match="got 2 prompts, 1 chosen and 2 rejected"):
        reward_fn_accuracy(toy_rewards, ["a", "b"], ["x"], ["y", "z"])
