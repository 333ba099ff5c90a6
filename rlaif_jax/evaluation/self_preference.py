"""Self-preference: how much a judge favours its own model's outputs beyond what a neutral judge sees.

Definition used here. Over the same n pairs (own model's response as A, another model's as B):
  self_preference = win_rate(A | the judge whose model wrote A) - win_rate(A | a neutral judge or the gold reward)
Both win rates follow `win_rate.judge_outcomes` (both orders averaged, ties count half, same tie rule). 0 means the
judge rates its own outputs as the reference does; > 0 is self-preference. The CI is a paired bootstrap: the same
resampled examples feed both win rates, so the judges' shared dependence on the examples cancels.
"""

from __future__ import annotations

import numpy as np

from rlaif_jax.evaluation.win_rate import bootstrap_mean_ci, judge_outcomes


def self_preference(
    self_p_first,
    self_p_second,
    reference_p_first,
    reference_p_second,
    *,
    tie_band: float = 0.0,
    ties_on_disagreement: bool = True,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Self-preference of a judge from its P(own output preferred) `[n]` in both orders (second order may be None)
    and the reference judge's on the same pairs.

    Returns self_win_rate, reference_win_rate, self_preference (their difference), ci_low / ci_high (paired
    bootstrap of the difference; None without resamples), agreement (fraction of identical outcomes), num_examples.
    """
    rule = dict(tie_band=tie_band, ties_on_disagreement=ties_on_disagreement)
    own = judge_outcomes(self_p_first, self_p_second, **rule)
    reference = judge_outcomes(reference_p_first, reference_p_second, **rule)
    if own.shape != reference.shape:
        raise ValueError(f"the self judge scored {own.size} pairs but the reference judge {reference.size}")
    difference = own - reference
    ci = (None, None)
    if num_resamples:
        ci = bootstrap_mean_ci(difference, num_resamples=num_resamples, confidence=confidence, seed=seed)
    return {
        "self_win_rate": float(own.mean()),
        "reference_win_rate": float(reference.mean()),
        "self_preference": float(difference.mean()),
        "ci_low": ci[0],
        "ci_high": ci[1],
        "confidence": confidence,
        "agreement": float(np.mean(own == reference)),
        "num_examples": int(own.size),
    }
