"""Programmatic gold rewards: the toy letters task, VADER sentiment (the DPO paper's controlled-sentiment task) and
the arithmetic task's exact-answer check (rewards/verifiable.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlaif_jax.data.toy import toy_reward


def toy_rewards(prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    """Gold reward of the toy letters task for each (prompt, completion): `[n]` in [0, 1]."""
    return np.array([toy_reward(p, c) for p, c in zip(prompts, completions)], np.float32)


class SentimentJudge:
    """VADER compound sentiment in [-1, 1] (Hutto & Gilbert 2014): the gold reward of the sentiment task.

    Built once (it loads its lexicon); call it like a reward function.
    """

    def __init__(self):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as error:
            raise ImportError("the sentiment reward needs `pip install vaderSentiment`") from error
        self._analyzer = SentimentIntensityAnalyzer()

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        del prompts
        return np.array([self._analyzer.polarity_scores(text)["compound"] for text in completions], np.float32)


GOLD_REWARDS = ("toy", "sentiment", "arithmetic")


def make_gold_reward(name: str):
    """The reward function called `name`: 'toy', 'sentiment' or 'arithmetic' (1 for the exact answer, else 0)."""
    if name == "toy":
        return toy_rewards
    if name == "sentiment":
        return SentimentJudge()
    if name == "arithmetic":
        from rlaif_jax.rewards.verifiable import ArithmeticReward

        return ArithmeticReward()
    raise ValueError(f"unknown gold reward {name!r}; expected one of {GOLD_REWARDS}")
