"""Direct RLAIF (d-RLAIF, Lee et al. 2023 §2.2.2, App. D): an LLM scores each response 1-10 and that score is the
RL reward, with no reward model.

The score prompt ends with `SCORE: `; P(i) for i = 1..10 is the model's likelihood of answering "i", renormalised
over the ten answers (`choice_probabilities`; a score of several tokens, like "10" = "1", "0" for SmolLM2, is scored
as its full continuation, so "1" also carries the mass of continuations that go on to "10"). The expected score is
s = sum_i i * P(i) in [1, 10]. The paper then "normalises s to [-1, 1]" without giving the map; we use the affine
map (s - 5.5) / 4.5, which sends 1 to -1 and 10 to 1. That choice is ours (UNVERIFIED).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rlaif_jax.feedback import templates
from rlaif_jax.feedback.choice import choice_probabilities
from rlaif_jax.models.loading import LanguageModel

PREFIX = "d_rlaif:"  # `config.rl.reward = "d_rlaif:[TEMPLATE:]MODEL"` selects this reward
SCORES = tuple(str(score) for score in range(1, 11))


def expected_score(score_probs: np.ndarray) -> np.ndarray:
    """s = sum_i i * P(i) for `score_probs [n, 10]` (columns: scores 1..10). Returns `[n]` in [1, 10]."""
    score_probs = np.asarray(score_probs, np.float64)
    if score_probs.ndim != 2 or score_probs.shape[1] != len(SCORES):
        raise ValueError(f"score_probs must be [n, {len(SCORES)}]; got shape {score_probs.shape}")
    return score_probs @ np.arange(1, len(SCORES) + 1, dtype=np.float64)


def score_to_reward(score: np.ndarray) -> np.ndarray:
    """(s - 5.5) / 4.5: the expected score `[n]` in [1, 10] mapped affinely onto [-1, 1] (our choice; the paper
    does not give its map)."""
    return (np.asarray(score, np.float64) - 5.5) / 4.5


@dataclasses.dataclass
class DRlaifScores:
    """probs: float64 [n, 10], P(score i); expected_score: [n], s; reward: [n], (s - 5.5) / 4.5."""

    probs: np.ndarray
    expected_score: np.ndarray
    reward: np.ndarray


def d_rlaif_scores(
    lm: LanguageModel,
    contexts: Sequence[str],
    responses: Sequence[str],
    *,
    template: templates.ScoreTemplate | str = "summarize",
    batch_size: int = 8,
) -> DRlaifScores:
    """Scores each (context, response) 1-10 with the labeler `lm` through the prompt of `template`.

    contexts, responses: n texts (a summarisation context loses its trailing `TL;DR:`). Returns DRlaifScores.
    """
    if isinstance(template, str):
        template = templates.score_template(template)
    prompts = templates.score_prompts(template, contexts, responses)
    probs = choice_probabilities(lm, prompts, SCORES, batch_size=batch_size)
    score = expected_score(probs)
    return DRlaifScores(probs=probs, expected_score=score, reward=score_to_reward(score))


def score_label(gold: float) -> str:
    """The 1-10 answer for a gold reward in [0, 1]: round(1 + 9 * gold), halves up, so that a labeler taught these
    answers has expected score ~ 1 + 9 * gold and reward ~ 2 * gold - 1."""
    if not 0.0 <= gold <= 1.0:
        raise ValueError(f"gold reward {gold} is outside [0, 1]")
    return str(int(np.floor(1 + 9 * gold + 0.5 + 1e-9)))  # 1e-9: 9 * (1/6) is 1.4999... in floats


def score_demonstrations(template: templates.ScoreTemplate | str, rows: Sequence[dict]) -> list[dict]:
    """SFT rows that teach a labeler the score prompt of `template`: each {'prompt', 'response', 'gold'} row (gold in
    [0, 1]) becomes {'prompt': the d-RLAIF score prompt of (prompt, response), 'response': `score_label(gold)`}.
    Used to make a small judge where no instruction-tuned LLM fits (the tiny chain): it stands in for one."""
    if isinstance(template, str):
        template = templates.score_template(template)
    for index, row in enumerate(rows):
        missing = [key for key in ("prompt", "response", "gold") if key not in row]
        if missing:
            raise ValueError(f"score demonstration row {index} has no {missing}; it has {sorted(row)}")
        if not 0.0 <= row["gold"] <= 1.0:
            raise ValueError(f"score demonstration row {index}: gold reward {row['gold']} is outside [0, 1]")
    prompts = templates.score_prompts(template, [row["prompt"] for row in rows], [row["response"] for row in rows])
    return [{"prompt": prompt, "response": score_label(row["gold"])} for prompt, row in zip(prompts, rows)]


class DRlaifReward:
    """The d-RLAIF reward as an RL reward function: `reward_fn(prompts, completions) -> float32 [n]` in [-1, 1]."""

    def __init__(self, lm: LanguageModel, *, template: str = "summarize", batch_size: int = 8):
        self.lm = lm
        self.template = templates.score_template(template)
        self.batch_size = batch_size

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        scores = d_rlaif_scores(self.lm, prompts, completions, template=self.template, batch_size=self.batch_size)
        return scores.reward.astype(np.float32)


def parse_spec(spec: str) -> tuple[str, str]:
    """'[TEMPLATE:]MODEL' (the part of a reward name after `d_rlaif:`) -> (template, model); the template defaults
    to 'summarize' and is taken from the front only when it names one of `templates.SCORE_TEMPLATES`."""
    head, separator, rest = spec.partition(":")
    if separator and head in templates.SCORE_TEMPLATES:
        template, model = head, rest
    else:
        template, model = "summarize", spec
    if not model:
        raise ValueError(f"reward {PREFIX}{spec!r} names no labeler model; expected {PREFIX}[TEMPLATE:]MODEL")
    return template, model


def load_d_rlaif_reward(spec: str, *, batch_size: int = 8, mesh=None, rules=None) -> DRlaifReward:
    """The reward of `d_rlaif:SPEC`: the labeler MODEL loaded with `models.load` (scan_layers off: inference only),
    or 'tiny' for a random-init tiny model with the byte tokenizer (wiring tests only: its scores mean nothing);
    sharded on `mesh` by `rules` when given."""
    template, model_name = parse_spec(spec)
    if model_name == "tiny":
        from rlaif_jax import config_defaults, models
        from rlaif_jax.models.byte_tokenizer import byte_tokenizer

        tiny = config_defaults.model("tiny")
        config = models.ModelConfig(**dict(tiny.tiny), scan_layers=False)
        lm = models.init_random(config, seed=tiny.seed, tokenizer=byte_tokenizer(), mesh=mesh, rules=rules)
    else:
        from rlaif_jax import models

        lm = models.load(model_name, scan_layers=False, mesh=mesh, rules=rules)
    if lm.tokenizer is None:
        raise ValueError(f"d-RLAIF labeler {model_name!r} has no tokenizer")
    return DRlaifReward(lm, template=template, batch_size=batch_size)
