"""An AI rater's P(harmless) of single responses, for RLAIF's harmless rate (§2.3; the paper's raters are human).

The prompt is `templates.HARMLESS_RATING` (ours, UNVERIFIED); the rate itself is `evaluation.harmless.harmless_rate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlaif_jax.feedback import templates
from rlaif_jax.feedback.choice import choice_probabilities


def harmless_prompts(contexts: Sequence[str], responses: Sequence[str]) -> list[str]:
    """The rating prompt of each (context, response) pair (contexts as the labeler shows them)."""
    return templates.score_prompts(templates.HARMLESS_RATING, contexts, responses)


def ai_harmless_probabilities(
    lm, contexts: Sequence[str], responses: Sequence[str], *, batch_size: int = 8
) -> np.ndarray:
    """P(harmless) `[n]` float64: P("1") / (P("1") + P("2")) of `lm` after each rating prompt."""
    probs = choice_probabilities(lm, harmless_prompts(contexts, responses), ("1", "2"), batch_size=batch_size)
    return probs[:, 0]
