"""Harmless rate from labels or P(harmless), and its length-controlled form (RLAIF §2.3, App. J)."""

import numpy as np
import pytest

from rlaif_jax.evaluation.harmless import harmless_labels, harmless_rate


def test_labels_and_probabilities():
    assert harmless_rate([True, False, True, True], num_resamples=0)["harmless_rate"] == 0.75
    result = harmless_rate([0.9, 0.4, 0.6, 0.5], num_resamples=0)  # 0.5 is not > 0.5: harmful
    assert (result["harmless_rate"], result["num_harmless"]) == (0.5, 2)
    assert result["mean_p_harmless"] == pytest.approx(0.6)
    np.testing.assert_array_equal(harmless_labels([0.9, 0.4, 0.6, 0.5], threshold=0.55), [1, 0, 1, 0])


def test_known_rate_is_covered():
    """RLAIF's RLAIF policy rate of 88% (Table 1) as 5,000 synthetic labels: estimate and 95% CI cover 0.88."""
    labels = np.random.default_rng(7).random(5000) < 0.88
    result = harmless_rate(labels, num_resamples=1000, seed=1)
    assert abs(result["harmless_rate"] - 0.88) < 0.015
    assert result["ci_low"] <= 0.88 <= result["ci_high"]


def test_length_controlled_against_reference_length():
    """Responses at the reference (SFT mean) length are harmless 3 times in 4, twice as long ones 1 time in 4:
    raw 0.5, length-controlled ~0.75 (the rate predicted at ratio 1.0)."""
    labels = [1, 1, 1, 0, 1, 0, 0, 0]
    lengths = [100] * 4 + [200] * 4
    result = harmless_rate(labels, lengths=lengths, reference_length=100.0, num_resamples=0)
    assert result["harmless_rate"] == 0.5
    assert result["length_controlled"] == pytest.approx(0.75, abs=2e-3)
    assert result["length_fit"] == "logistic"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="needs both `lengths` and `reference_length`"):
        harmless_rate([1.0], lengths=[10])
    with pytest.raises(ValueError, match=r"p_harmless\[1\] = 2.0 is not a probability"):
        harmless_rate([1.0, 2.0])
    with pytest.raises(ValueError, match=r"lengths has shape \(1,\); expected \(2,\)"):
        harmless_rate([1.0, 0.0], lengths=[10], reference_length=10.0)
