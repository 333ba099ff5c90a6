"""The RLAIF pairwise labeler (Lee et al. 2023, §2.1): a soft preference between two responses from an LLM.

For each pair (a, b) the labeling prompt is scored twice, with a as response 1 and with b as response 1; each
order gives the renormalised probabilities of "1" and "2" (`choice_probabilities`), and the two distributions are
averaged over positions (§2.1.1 position debiasing):

    P(a preferred) = (P("1" | a first) + P("2" | b first)) / 2,

so swapping a and b gives exactly 1 - P(a preferred). With chain of thought (§2.1.2), each prompt ends with the CoT
instruction and `Rationale:` (few-shot summaries: `Thoughts on Summary 1 -`, Table 18), a rationale is decoded
greedily (App. D: temperature 0, up to 512 tokens), and the probabilities are read after prompt + rationale +
ending. A template that asks for the worse response (harmless:
"the most harmful") has its label flipped: P(a preferred) = 1 - P(a named).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rlaif_jax import sampling
from rlaif_jax.feedback import templates
from rlaif_jax.feedback.choice import choice_probabilities
from rlaif_jax.models.loading import LanguageModel, with_layer_layout

CHOICES = ("1", "2")


@dataclasses.dataclass
class PairwiseLabels:
    """What `label_pairs` returns for n pairs (a, b).

    preference: float64 [n], P(a preferred over b): position-debiased, flipped for a `labels_worse` template.
    probs_original: float64 [n, 2], the labeler's P("1"), P("2") with a as response 1 (raw: before any flip).
    probs_swapped: float64 [n, 2], the same with b as response 1.
    rationales_original, rationales_swapped: the CoT rationales of each order (None without CoT).
    """

    preference: np.ndarray
    probs_original: np.ndarray
    probs_swapped: np.ndarray
    rationales_original: list[str] | None = None
    rationales_swapped: list[str] | None = None


def debiased_preference(probs_original: np.ndarray, probs_swapped: np.ndarray, *, labels_worse: bool) -> np.ndarray:
    """P(a preferred) `[n]` from the two orders' `[n, 2]` probabilities: the mean of P("1" | a first) and
    P("2" | b first), flipped to 1 - that when the labeler names the worse response."""
    named_a = (probs_original[:, 0] + probs_swapped[:, 1]) / 2.0
    return 1.0 - named_a if labels_worse else named_a


def decode_rationales(
    lm: LanguageModel, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy (temperature 0) continuations of each prompt, at most `max_new_tokens`, stopping at EOS; the prompt
    is tokenised with the tokenizer's defaults, like `choice_probabilities`."""
    rationales = []
    for start in range(0, len(prompts), batch_size):
        ids = [list(lm.tokenizer(text)["input_ids"]) for text in prompts[start : start + batch_size]]
        rationales += sampling.generate(lm, ids, max_new_tokens=max_new_tokens, rng=None, temperature=0.0).texts
    return rationales


def label_pairs(
    lm: LanguageModel,
    template: templates.PairwiseTemplate | str,
    contexts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    *,
    num_shots: int = 0,
    cot: bool = False,
    cot_max_new_tokens: int = 512,
    batch_size: int = 8,
    use_chat_template: bool = False,
    rationales: tuple[Sequence[str], Sequence[str]] | None = None,
) -> PairwiseLabels:
    """Soft AI preference of a over b for each (context, a, b), both orders scored and averaged.

    Args:
      lm: the labeler (any model `models.load` loads, with its tokenizer).
      template: a PairwiseTemplate, a template name or a task ('summarize', 'helpful', 'harmless').
      contexts, responses_a, responses_b: n texts each (contexts as the labeler should read them, see
        `templates.labeler_context`).
      num_shots: few-shot exemplars of the template to include (0 = zero-shot).
      cot: two-step chain of thought; rationales are decoded greedily, `cot_max_new_tokens` at most.
      batch_size: sequences per forward pass / per sampler call.
      use_chat_template: the prompt as a chat user turn, the answer prefix opening the assistant turn.
      rationales: with `cot`, fixed (original order, swapped order) rationales to use instead of decoding.
    Returns:
      PairwiseLabels with `[n]` preference and `[n, 2]` per-order probabilities.
    """
    if isinstance(template, str):
        template = templates.pairwise_template(template)
    if lm.tokenizer is None:
        raise ValueError("the labeler needs a model with a tokenizer (lm.tokenizer is None)")
    if not len(contexts) == len(responses_a) == len(responses_b):
        raise ValueError(
            f"contexts, responses_a, responses_b differ in length: {len(contexts)}, {len(responses_a)}, "
            f"{len(responses_b)}"
        )
    if rationales is not None and not cot:
        raise ValueError("fixed rationales are only used with cot=True")
    n = len(contexts)

    def prompt(context, first, second):
        return templates.pairwise_prompt(
            template,
            context,
            first,
            second,
            num_shots=num_shots,
            cot=cot,
            tokenizer=lm.tokenizer,
            use_chat_template=use_chat_template,
        )

    prompts = [prompt(c, a, b) for c, a, b in zip(contexts, responses_a, responses_b)]
    prompts += [prompt(c, b, a) for c, a, b in zip(contexts, responses_a, responses_b)]
    decoded = None
    if cot:
        if rationales is None:
            lm = with_layer_layout(lm, scan_layers=False)  # once, not in every sampler call
            decoded = decode_rationales(lm, prompts, max_new_tokens=cot_max_new_tokens, batch_size=batch_size)
        else:
            lengths = [len(r) for r in rationales]
            if lengths != [n, n]:
                raise ValueError(f"rationales: expected (original, swapped) lists of {n} each; got lengths {lengths}")
            decoded = list(rationales[0]) + list(rationales[1])
        prompts = [templates.cot_readout_prompt(template, p, r) for p, r in zip(prompts, decoded)]
    probs = choice_probabilities(lm, prompts, CHOICES, batch_size=batch_size)
    probs_original, probs_swapped = probs[:n], probs[n:]
    return PairwiseLabels(
        preference=debiased_preference(probs_original, probs_swapped, labels_worse=template.labels_worse),
        probs_original=probs_original,
        probs_swapped=probs_swapped,
        rationales_original=None if decoded is None else decoded[:n],
        rationales_swapped=None if decoded is None else decoded[n:],
    )
