"""Length-controlled rates (RLAIF App. J): a logistic regression of the outcome on the length ratio, predicted at 1.0.

RLAIF fits "A preferred" on len(A) / len(B) in characters and reports the prediction at ratio 1.0, the win rate
two equally long responses would get; for the harmless rate the reference length is the SFT policy's mean length.
We regress on the log ratio by default (`feature='log_ratio'`: symmetric in A and B, predicted at log 1 = 0, so the
result is sigmoid(intercept)); `feature='ratio'` is App. J's literal form. Ties enter as soft targets of 0.5.
The fit is a few Newton (IRLS) steps in numpy with a backtracking line search and a small ridge on the slope only,
so an intercept-only fit reproduces the raw rate exactly and length-separable data stays finite.
"""

from __future__ import annotations

import numpy as np

from rlaif_jax.evaluation.win_rate import bootstrap_ci

FEATURES = ("log_ratio", "ratio")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(z / 2))


def _objective(features: np.ndarray, targets: np.ndarray, coefficients: np.ndarray, penalty: np.ndarray) -> float:
    logits = features @ coefficients
    # Bernoulli negative log-likelihood with soft targets: log(1 + e^z) - y z, computed stably.
    nll = np.logaddexp(0.0, logits) - targets * logits
    return float(nll.sum() + 0.5 * (penalty * coefficients**2).sum())


def fit_logistic(features, targets, *, l2: float = 1e-3, max_steps: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Coefficients `[d]` of a logistic regression of `targets [n]` (in [0, 1]) on `features [n, d]`, whose first
    column is the (unpenalised) intercept column of ones; the other coefficients carry a ridge of `l2 / 2 * w**2`.

    Newton steps w <- w + H^-1 g with g = X^T (y - p) - l2 w and H = X^T diag(p (1 - p)) X + l2, each step halved
    until the penalised negative log-likelihood does not increase; stops when a step moves no coefficient by `tol`.
    """
    features = np.asarray(features, np.float64)
    targets = np.asarray(targets, np.float64)
    if features.ndim != 2 or targets.shape != features.shape[:1]:
        raise ValueError(f"features must be [n, d] and targets [n]; got {features.shape} and {targets.shape}")
    if not np.all((targets >= 0) & (targets <= 1)):
        raise ValueError("targets must lie in [0, 1]")
    penalty = np.full(features.shape[1], l2)
    penalty[0] = 0.0
    coefficients = np.zeros(features.shape[1])
    current = _objective(features, targets, coefficients, penalty)
    for _ in range(max_steps):
        probabilities = _sigmoid(features @ coefficients)
        gradient = features.T @ (targets - probabilities) - penalty * coefficients
        weights = probabilities * (1 - probabilities)
        hessian = features.T @ (features * weights[:, None]) + np.diag(penalty) + 1e-12 * np.eye(features.shape[1])
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8:
            candidate = coefficients + scale * step
            value = _objective(features, targets, candidate, penalty)
            if value <= current + 1e-12 * abs(current):
                break
            scale /= 2
        else:
            break
        moved = np.max(np.abs(candidate - coefficients))
        coefficients, current = candidate, value
        if moved < tol:
            break
    return coefficients


def length_controlled_rate(
    outcomes, length_ratios, *, feature: str = "log_ratio", l2: float = 1e-3, max_steps: int = 50
) -> dict:
    """Rate predicted at length ratio 1.0 by a logistic regression of `outcomes [n]` (1 / 0.5 / 0 or any value
    in [0, 1]) on the length ratios `[n]` (> 0).

    Returns: length_controlled (the prediction), raw (mean outcome), intercept, slope, feature and fit:
    'logistic'; 'intercept_only' when the ratios never vary (then length_controlled == raw); 'constant' when every
    outcome is equal (the regression diverges; the rate is that value).
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown length feature {feature!r}; expected one of {FEATURES}")
    outcomes = np.asarray(outcomes, np.float64)
    ratios = np.asarray(length_ratios, np.float64)
    if outcomes.ndim != 1 or outcomes.size == 0 or ratios.shape != outcomes.shape:
        raise ValueError(f"outcomes and length_ratios must be non-empty [n]; got {outcomes.shape} and {ratios.shape}")
    if not np.all(np.isfinite(ratios) & (ratios > 0)):
        raise ValueError(f"length ratio {ratios[~(np.isfinite(ratios) & (ratios > 0))][0]} is not positive")
    raw = float(outcomes.mean())
    x = np.log(ratios) if feature == "log_ratio" else ratios
    x_at_one = 0.0 if feature == "log_ratio" else 1.0
    result = {"raw": raw, "feature": feature}
    if np.all(outcomes == outcomes[0]):
        return {**result, "length_controlled": raw, "intercept": None, "slope": None, "fit": "constant"}
    if np.ptp(x) < 1e-12:
        intercept = float(fit_logistic(np.ones((x.size, 1)), outcomes, max_steps=max_steps)[0])
        return {**result, "length_controlled": raw, "intercept": intercept, "slope": 0.0, "fit": "intercept_only"}
    intercept, slope = fit_logistic(np.stack([np.ones_like(x), x], axis=1), outcomes, l2=l2, max_steps=max_steps)
    predicted = float(_sigmoid(np.asarray(intercept + slope * x_at_one)))
    return {
        **result,
        "length_controlled": predicted,
        "intercept": float(intercept),
        "slope": float(slope),
        "fit": "logistic",
    }


def length_controlled_win_rate(
    outcomes,
    length_a,
    length_b,
    *,
    feature: str = "log_ratio",
    num_resamples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Length-controlled win rate of A (RLAIF App. J): `length_controlled_rate` on len(A) / len(B), `[n]` each.

    Lengths are in any unit (App. J: characters) and are clipped at 1, so an empty response counts as one unit.
    With `num_resamples > 0` adds lc_ci_low / lc_ci_high, a percentile bootstrap over examples (refitting each time).
    """
    length_a = np.maximum(np.asarray(length_a, np.float64), 1.0)
    length_b = np.maximum(np.asarray(length_b, np.float64), 1.0)
    outcomes = np.asarray(outcomes, np.float64)
    if length_a.shape != outcomes.shape or length_b.shape != outcomes.shape:
        raise ValueError(
            f"outcomes {outcomes.shape}, length_a {length_a.shape} and length_b {length_b.shape} must all be [n]"
        )
    ratios = length_a / length_b
    result = length_controlled_rate(outcomes, ratios, feature=feature)
    result["mean_length_ratio"] = float(ratios.mean())
    if num_resamples:
        low, high = bootstrap_ci(
            lambda rows: length_controlled_rate(outcomes[rows], ratios[rows], feature=feature, max_steps=25)[
                "length_controlled"
            ],
            outcomes.size,
            num_resamples=num_resamples,
            confidence=confidence,
            seed=seed,
        )
        result.update(lc_ci_low=low, lc_ci_high=high)
    return result
