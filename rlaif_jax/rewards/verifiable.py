"""Rule-based rewards: the arithmetic task's exact-answer check, the answer format, a length penalty, and the
weighted sum that composes them with any other reward (a reward model, an AI judge).

A reward function is `fn(prompts, completions) -> float32 [n]`. These ones also leave `fn.last_metrics`, a dict of
counts and per-term means of their last call, which the RL loop adds to its metrics row (unparsed answers are
counted there, never raised).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from rlaif_jax.data import arithmetic


class ArithmeticReward:
    """1.0 when the completion's final number (`arithmetic.final_number`) equals the prompt's exact answer, else 0.

    A completion with no number, or a prompt that is not an arithmetic-task prompt, scores 0 and is counted in
    `last_metrics` ('unparsed_answers', 'unparsed_prompts'); the first unparsable prompt is also logged.
    """

    def __init__(self):
        self.last_metrics: dict[str, float] = {}
        self._warned = False

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        rewards = np.zeros(len(completions), np.float32)
        unparsed_answers = unparsed_prompts = 0
        for index, (prompt, completion) in enumerate(zip(prompts, completions)):
            try:
                answer = arithmetic.answer_of(prompt)
            except ValueError as error:
                unparsed_prompts += 1
                if not self._warned:
                    logging.warning("arithmetic reward: prompt %d scored 0: %s", index, error)
                    self._warned = True
                continue
            value = arithmetic.final_number(completion)
            if value is None:
                unparsed_answers += 1
            elif value == answer:
                rewards[index] = 1.0
        self.last_metrics = {"unparsed_answers": float(unparsed_answers), "unparsed_prompts": float(unparsed_prompts)}
        return rewards


def format_rewards(prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    """1.0 for a completion that ends with 'Answer: <number>' (`arithmetic.has_answer_format`), else 0: `[n]`."""
    del prompts
    return np.array([float(arithmetic.has_answer_format(text)) for text in completions], np.float32)


class LengthPenalty:
    """`-max(0, words - max_words) / max_words` per completion (0 up to `max_words` words, then linearly lower)."""

    def __init__(self, max_words: int):
        if max_words < 1:
            raise ValueError(f"length penalty: max_words must be >= 1, got {max_words}")
        self.max_words = max_words

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        del prompts
        words = np.array([len(text.split()) for text in completions], np.float32)
        return -np.maximum(words - self.max_words, 0.0) / self.max_words


class WeightedSum:
    """`Σ_k w_k · reward_k(prompts, completions)`; `last_metrics` holds each term's mean ('reward/NAME') and the
    terms' own `last_metrics`."""

    def __init__(self, terms: Sequence[tuple[float, str, Callable]]):
        if not terms:
            raise ValueError("a weighted reward needs at least one term")
        self.terms = list(terms)
        self.last_metrics: dict[str, float] = {}

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        total = np.zeros(len(completions), np.float32)
        metrics = {}
        for weight, name, fn in self.terms:
            values = np.asarray(fn(prompts, completions), np.float32)
            if values.shape != total.shape:
                raise ValueError(f"reward term {name!r} returned shape {values.shape}; expected {total.shape}")
            total += weight * values
            metrics[f"reward/{name}"] = float(values.mean()) if len(values) else 0.0
            metrics.update(getattr(fn, "last_metrics", {}))
        self.last_metrics = metrics
        return total
