"""Self-preference: the self judge's win rate for its own outputs minus a reference judge's on the same pairs."""

import numpy as np
import pytest

from rlaif_jax.evaluation.self_preference import self_preference


def test_hand_case():
    # Self judge: own output wins pairs 0-2, ties pair 3 -> 0.875. Reference: win, loss, tie, tie -> 0.5.
    result = self_preference([1, 1, 1, 0.5], None, [1, 0, 0.5, 0.5], None, num_resamples=500)
    assert result["self_win_rate"] == 0.875
    assert result["reference_win_rate"] == 0.5
    assert result["self_preference"] == 0.375
    assert result["agreement"] == 0.5
    assert result["ci_low"] <= 0.375 <= result["ci_high"]


def test_position_biased_self_judge_counts_as_ties():
    """A self judge that always picks position 1 (P(A)=0.9 first, 0.1 second) has no self-preference left after
    the disagreement rule: every pair ties, like a reference judge that sees no difference."""
    n = 10
    result = self_preference(np.full(n, 0.9), np.full(n, 0.1), np.full(n, 0.5), np.full(n, 0.5), num_resamples=0)
    assert result["self_win_rate"] == result["reference_win_rate"] == 0.5
    assert result["self_preference"] == 0.0 and result["ci_low"] is None


def test_planted_bias_is_measured():
    """Reference win rate 0.5; the self judge flips 20% of its losses to wins: self-preference ~0.1."""
    rng = np.random.default_rng(11)
    reference = (rng.random(4000) < 0.5).astype(float)
    own = np.where((reference == 0) & (rng.random(4000) < 0.2), 1.0, reference)
    result = self_preference(own, None, reference, None, seed=3)
    assert result["self_preference"] == pytest.approx(0.1, abs=0.015)
    assert result["ci_low"] <= 0.1 <= result["ci_high"]
    assert result["ci_low"] > 0.07


def test_mismatched_sizes_are_named():
    with pytest.raises(ValueError, match="self judge scored 2 pairs but the reference judge 3"):
        self_preference([1, 0], None, [1, 0, 1], None)
