"""Judge win rate of policy A against policy B from per-example judge probabilities, shown in both orders.

Any judge plugs in through two arrays over the same n examples:
  p_a_first   [n]  P(A preferred) when A is shown first
  p_a_second  [n]  P(A preferred) when A is shown second (already flipped back to A's side)
A gold reward gives 1 / 0.5 / 0 in both orders; an AI labeler gives its two softmax probabilities (RLAIF §2.1.1
averages the two orders to cancel position bias; DPO App. C.2 randomises the order, i.e. one order per example).

Win/tie/loss rule for one example (p = mean of the two orders, the debiased preference):
  tie   if |p - 0.5| <= tie_band, or (with `ties_on_disagreement`) the two orders prefer opposite sides
        ((p_a_first - 0.5) * (p_a_second - 0.5) < 0: the verdict follows the position, not the response);
  win   if p > 0.5, loss if p < 0.5 otherwise.
Win rate = (wins + ties / 2) / n, the convention of RLAIF's pairwise rates (their raters could not tie). The CI is a
seeded percentile bootstrap over examples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def as_probabilities(name: str, values) -> np.ndarray:
    """`values` as a float64 `[n]` array; raises naming `name` unless it is 1-D, non-empty, finite and in [0, 1]."""
    array = np.asarray(values, np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array [n]; got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0) | (array > 1))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {array[bad[0]]} is not a probability in [0, 1]")
    return array


def _pair(p_a_first, p_a_second) -> tuple[np.ndarray, np.ndarray]:
    first = as_probabilities("p_a_first", p_a_first)
    second = first if p_a_second is None else as_probabilities("p_a_second", p_a_second)
    if second.shape != first.shape:
        raise ValueError(f"p_a_first has shape {first.shape} but p_a_second has shape {second.shape}")
    return first, second


def debiased_preference(p_a_first, p_a_second=None) -> np.ndarray:
    """Mean of the two orders' P(A preferred), `[n]`; with `p_a_second=None` (one order only) `p_a_first` itself."""
    first, second = _pair(p_a_first, p_a_second)
    return (first + second) / 2


def judge_outcomes(
    p_a_first, p_a_second=None, *, tie_band: float = 0.0, ties_on_disagreement: bool = True
) -> np.ndarray:
    """Per-example outcome for A under the module's rule: 1 win, 0.5 tie, 0 loss, `[n]` float64."""
    if not 0 <= tie_band < 0.5:
        raise ValueError(f"tie_band must be in [0, 0.5); got {tie_band}")
    first, second = _pair(p_a_first, p_a_second)
    preference = (first + second) / 2
    outcomes = np.where(preference > 0.5, 1.0, 0.0)
    tie = np.abs(preference - 0.5) <= tie_band
    if ties_on_disagreement:
        tie |= (first - 0.5) * (second - 0.5) < 0
    return np.where(tie, 0.5, outcomes)


def bootstrap_mean_ci(
    values, *, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values [n]`: resample the n examples with replacement
    `num_resamples` times (numpy Generator seeded with `seed`) and take the (1 ± confidence) / 2 quantiles."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array [n]; got shape {values.shape}")
    _check_bootstrap(num_resamples, confidence)
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.empty(num_resamples)
    chunk = max(1, (1 << 22) // n)  # resamples per draw: bounds the index matrix at 4M entries
    for start in range(0, num_resamples, chunk):
        size = min(chunk, num_resamples - start)
        means[start : start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return _percentiles(means, confidence)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    num_examples: int,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of any statistic: `statistic(indices [num_examples]) -> float` is evaluated on
    `num_resamples` resamples of the example indices (a paired bootstrap when it reads several arrays)."""
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1; got {num_examples}")
    _check_bootstrap(num_resamples, confidence)
    rng = np.random.default_rng(seed)
    samples = np.array([statistic(rng.integers(0, num_examples, num_examples)) for _ in range(num_resamples)])
    return _percentiles(samples, confidence)


def _check_bootstrap(num_resamples: int, confidence: float) -> None:
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1; got {num_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def win_rate(
    p_a_first,
    p_a_second=None,
    *,
    tie_band: float = 0.0,
    ties_on_disagreement: bool = True,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Win rate of A (ties count half) with its bootstrap CI from judge probabilities `[n]` in one or both orders.

    Returns a JSON-ready dict: win_rate, ci_low, ci_high (None when num_resamples == 0), confidence, num_examples,
    wins, ties, losses, mean_preference (mean debiased P(A)) and, with both orders, position_consistency (the
    fraction of examples whose two orders prefer the same side, or both exactly 0.5).
    """
    first, second = _pair(p_a_first, p_a_second)
    outcomes = judge_outcomes(first, second, tie_band=tie_band, ties_on_disagreement=ties_on_disagreement)
    ci = (None, None)
    if num_resamples:
        ci = bootstrap_mean_ci(outcomes, num_resamples=num_resamples, confidence=confidence, seed=seed)
    result = {
        "win_rate": float(outcomes.mean()),
        "ci_low": ci[0],
        "ci_high": ci[1],
        "confidence": confidence,
        "num_examples": int(outcomes.size),
        "wins": int((outcomes == 1).sum()),
        "ties": int((outcomes == 0.5).sum()),
        "losses": int((outcomes == 0).sum()),
        "mean_preference": float(((first + second) / 2).mean()),
    }
    if p_a_second is not None:
        result["position_consistency"] = float((np.sign(first - 0.5) == np.sign(second - 0.5)).mean())
    return result
