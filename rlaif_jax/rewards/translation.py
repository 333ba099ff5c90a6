"""Sentence-level chrF and BLEU (sacrebleu) as reward functions for translation, normalised to [0, 1].

ReST (Gulcehre et al. 2023, §4) rewards translations with Metric X, a learned reference-free metric normalised to
[0, 1]; BLEU is its side metric. Without Metric X we score a sample against the reference of its source with
sacrebleu's sentence chrF (Popović 2015; character n-grams, informative on short sentences) or sentence BLEU
(exponential smoothing, sacrebleu's default), divided by 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

METRICS = ("chrf", "bleu")


def sentence_score(metric: str, hypothesis: str, references: Sequence[str]) -> float:
    """sacrebleu's sentence `metric` ('chrf' or 'bleu') of one hypothesis against its references, in [0, 1].
    Leading and trailing whitespace of the hypothesis is ignored (samples start with a space after the prompt)."""
    import sacrebleu

    hypothesis = hypothesis.strip()
    if metric == "chrf":
        return sacrebleu.sentence_chrf(hypothesis, list(references)).score / 100.0
    if metric == "bleu":
        return sacrebleu.sentence_bleu(hypothesis, list(references)).score / 100.0
    raise ValueError(f"unknown translation metric {metric!r}; expected one of {METRICS}")


class TranslationReward:
    """`fn(prompts, completions) -> [n]` float32 in [0, 1]: the sentence chrF / BLEU of each completion against the
    reference(s) of its prompt.

    references: {prompt text: reference or list of references}; a prompt missing from it raises KeyError naming it.
    """

    def __init__(self, references: Mapping[str, str | Sequence[str]], metric: str = "chrf"):
        if metric not in METRICS:
            raise ValueError(f"unknown translation metric {metric!r}; expected one of {METRICS}")
        self.metric = metric
        self._references = {
            prompt: [reference] if isinstance(reference, str) else list(reference)
            for prompt, reference in references.items()
        }

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        scores = []
        for index, (prompt, completion) in enumerate(zip(prompts, completions)):
            references = self._references.get(prompt)
            if references is None:
                raise KeyError(f"prompt {index} {prompt[:80]!r} has no reference translation")
            scores.append(sentence_score(self.metric, completion, references))
        return np.asarray(scores, np.float32)
