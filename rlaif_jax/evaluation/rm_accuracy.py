"""Reward-model pairwise accuracy on held-out preference pairs (RLAIF App. H, Table 5; InstructGPT §4).

A pair is right when the reward of the chosen response is higher than the rejected one's. Exact ties (e.g. an
untrained or saturated model) are counted apart and score half, so a constant reward gets 0.5, not 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rlaif_jax.evaluation.win_rate import bootstrap_mean_ci

RewardFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def pairwise_accuracy(
    chosen_scores, rejected_scores, *, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Accuracy of scores `[n]` on n (chosen, rejected) pairs, ties counting half, with a bootstrap CI.

    Returns accuracy, ci_low, ci_high (None without resamples), num_pairs, correct, ties, wrong,
    strict_accuracy (ties counted wrong) and mean_margin (mean chosen - rejected score).
    """
    chosen = np.asarray(chosen_scores, np.float64)
    rejected = np.asarray(rejected_scores, np.float64)
    if chosen.ndim != 1 or chosen.size == 0 or rejected.shape != chosen.shape:
        raise ValueError(f"chosen and rejected scores must be non-empty [n]; got {chosen.shape} and {rejected.shape}")
    bad = np.flatnonzero(~np.isfinite(chosen) | ~np.isfinite(rejected))
    if bad.size:
        raise ValueError(f"pair {bad[0]} has a non-finite score: {chosen[bad[0]]} vs {rejected[bad[0]]}")
    margin = chosen - rejected
    credit = np.where(margin > 0, 1.0, np.where(margin == 0, 0.5, 0.0))
    ci = (None, None)
    if num_resamples:
        ci = bootstrap_mean_ci(credit, num_resamples=num_resamples, confidence=confidence, seed=seed)
    return {
        "accuracy": float(credit.mean()),
        "ci_low": ci[0],
        "ci_high": ci[1],
        "confidence": confidence,
        "num_pairs": int(credit.size),
        "correct": int((margin > 0).sum()),
        "ties": int((margin == 0).sum()),
        "wrong": int((margin < 0).sum()),
        "strict_accuracy": float((margin > 0).mean()),
        "mean_margin": float(margin.mean()),
    }


def reward_fn_accuracy(
    reward_fn: RewardFn, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str], **kwargs
) -> dict:
    """`pairwise_accuracy` of a reward function `fn(prompts, completions) -> [n]` (e.g. `RewardModelReward`, a gold
    reward) on held-out pairs given as three equally long lists of texts; kwargs go to `pairwise_accuracy`."""
    if not len(prompts) == len(chosen) == len(rejected):
        raise ValueError(f"got {len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected responses")
    n = len(prompts)
    scores = np.asarray(reward_fn(list(prompts) * 2, list(chosen) + list(rejected)), np.float64)
    if scores.shape != (2 * n,):
        raise ValueError(f"reward function returned shape {scores.shape}; expected ({2 * n},)")
    return pairwise_accuracy(scores[:n], scores[n:], **kwargs)
