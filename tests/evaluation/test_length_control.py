"""Length-controlled rates (RLAIF App. J) on planted logistic models and exact saturated designs."""

import numpy as np
import pytest

from rlaif_jax.evaluation.length_control import fit_logistic, length_controlled_rate, length_controlled_win_rate


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_wins_that_depend_only_on_length_are_controlled_to_one_half():
    """P(A wins) = sigmoid(3 log(len A / len B)) with A ~1.6x longer: raw win rate far above 0.5, LC ~ 0.5."""
    rng = np.random.default_rng(2)
    log_ratio = rng.normal(0.5, 0.4, 10_000)
    wins = (rng.random(10_000) < _sigmoid(3 * log_ratio)).astype(float)
    result = length_controlled_win_rate(wins, 100 * np.exp(log_ratio), np.full(10_000, 100.0))
    assert result["raw"] > 0.74
    assert abs(result["length_controlled"] - 0.5) < 0.03
    assert result["slope"] == pytest.approx(3.0, abs=0.2)
    assert result["fit"] == "logistic"


def test_planted_intercept_is_recovered():
    """Intercept 0.8, slope 2 on the log ratio: the fit recovers both and LC = sigmoid(0.8) = 0.68997."""
    rng = np.random.default_rng(5)
    log_ratio = rng.normal(0.0, 0.5, 10_000)
    wins = (rng.random(10_000) < _sigmoid(0.8 + 2 * log_ratio)).astype(float)
    result = length_controlled_win_rate(wins, 50 * np.exp(log_ratio), np.full(10_000, 50.0), num_resamples=50)
    assert result["intercept"] == pytest.approx(0.8, abs=0.08)
    assert result["slope"] == pytest.approx(2.0, abs=0.15)
    assert result["length_controlled"] == pytest.approx(_sigmoid(0.8), abs=0.02)
    assert result["lc_ci_low"] <= _sigmoid(0.8) <= result["lc_ci_high"]


def test_saturated_binary_design_has_closed_form():
    """x in {0, 1}: the MLE passes through the group means, intercept = logit(3/4) = ln 3, slope = -2 ln 3."""
    features = np.array([[1, 0]] * 4 + [[1, 1]] * 4, float)
    targets = np.array([1, 1, 1, 0, 1, 0, 0, 0], float)
    np.testing.assert_allclose(fit_logistic(features, targets, l2=0.0), [np.log(3), -2 * np.log(3)], atol=1e-9)
    # Ratios 1 and 2: with either feature the prediction at ratio 1.0 is the ratio-1 group's rate, 0.75 (less
    # the default 1e-3 ridge on the slope, which moves it by about 1e-3 at n = 8).
    ratios = np.array([1.0] * 4 + [2.0] * 4)
    for feature in ("log_ratio", "ratio"):
        result = length_controlled_rate(targets, ratios, feature=feature)
        assert result["raw"] == 0.5
        assert result["length_controlled"] == pytest.approx(0.75, abs=2e-3)


def test_fallbacks_when_lengths_or_outcomes_never_vary():
    result = length_controlled_win_rate([1.0, 0.0, 1.0, 1.0], [6, 6, 6, 6], [6, 6, 6, 6])
    assert result["fit"] == "intercept_only"
    assert result["length_controlled"] == result["raw"] == 0.75
    assert result["intercept"] == pytest.approx(np.log(3), abs=1e-9)
    constant = length_controlled_win_rate([0.5, 0.5, 0.5], [1, 5, 9], [3, 3, 3])
    assert (constant["fit"], constant["length_controlled"]) == ("constant", 0.5)


def test_separable_data_stays_finite_and_ties_are_soft_targets():
    """Wins exactly when A is longer and a tie (soft target 0.5) at equal length: the ridge keeps the slope finite
    (measured 8.0) and the tie pins the prediction at ratio 1 to 0.5 (measured 0.5037). Empty responses (length 0)
    count as length 1."""
    length_a = np.array([1, 2, 4, 8, 0, 2, 4, 8], float)
    length_b = np.array([8, 4, 2, 1, 8, 2, 2, 1], float)
    wins = np.array([0, 0, 1, 1, 0, 0.5, 1, 1])
    result = length_controlled_win_rate(wins, length_a, length_b)
    assert np.isfinite(result["slope"]) and result["slope"] > 5
    assert abs(result["length_controlled"] - 0.5) < 0.01


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown length feature 'chars'"):
        length_controlled_rate([1.0], [1.0], feature="chars")
    with pytest.raises(ValueError, match="length ratio -1.0 is not positive"):
        length_controlled_rate([1.0, 0.0], [1.0, -1.0])
    with pytest.raises(ValueError, match=r"length_a \(3,\)"):
        length_controlled_win_rate([1.0, 0.0], [1, 2, 3], [1, 2])
