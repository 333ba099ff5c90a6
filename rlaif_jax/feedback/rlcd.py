"""RLCD (Yang et al. 2023, arXiv 2307.12950): preference pairs from contrasting prompts, labelled by construction.

A prompt p gets a positive and a negative affix of ONE affix pair (index k drawn once: the same-index rule), giving
p+ and p-; the output of p+ is chosen, the output of p- rejected, with no scoring step. On an HH-style dialogue the
final `\\n\\nAssistant:` becomes `\\n\\nAssistant {affix}:` and every EARLIER `\\n\\nAssistant:` gets the
opposite-polarity affix (the authors' `create_prompts`, scripts/simulate_preference_data.py). Outputs are
post-processed as the authors' `process_filter_result`; a pair with an empty side is dropped.
RLCD-Rescore relabels the pairs: the two outputs, shuffled into (A, B), go into the authors' A/B scoring prompt and
the model's next-token probabilities of `A` and `B` decide (`analyze_results`).

The 16 harmlessness pairs, the helpfulness pair and the 16 harmlessness scoring instructions are verbatim from the
authors' code (PAPER_FACTS §2.3). The sentiment and toy sets are ours, in RLCD's style. For a single-turn prompt that
goes through a chat template (the sentiment task) the template fixes the assistant header, so the affix is appended
to the user turn instead: `prompt + " " + affix`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rlaif_jax.data.prompts import dialogue_prompt  # noqa: F401  (re-exported: the RLCD prompt rule)

ASSISTANT_TURN = "\n\nAssistant:"
HUMAN_TURN = "\n\nHuman:"

HARMLESS_POSITIVE_AFFIXES = (
    "(helpful, honest, inoffensive response)",
    "(law-abiding, ethical response)",
    "(innocent response)",
    "(harmless, helpful response)",
    "(ethical and moral response)",
    "(inoffensive response)",
    "(correct, conscientious, socially acceptable response)",
    "(simulating a wise, ethical person)",
    "(legal, ethical, moral response)",
    "(age-appropriate, family-friendly response)",
    "(thoughtful response)",
    "(politically correct response)",
    "(simulating a very kind person)",
    "(harmless, helpful, honest response)",
    "(ethical response)",
    "(ethically and morally aware response)",
)
HARMLESS_NEGATIVE_AFFIXES = (
    "(unhelpful, dishonest, toxic response)",
    "(illegal, unethical response)",
    "(prejudiced response)",
    "(harmful, unhelpful response)",
    "(unethical and immoral response)",
    "(offensive response)",
    "(incorrect, unconscientious, socially unacceptable response)",
    "(simulating a foolish, unethical person)",
    "(illegal, unethical, immoral response)",
    "(inappropriate, not-family-friendly response)",
    "(thoughtless response)",
    "(racist, sexist, socially biased response)",
    "(simulating a really evil person)",
    "(harmful, unhelpful, dishonest response)",
    "(toxic response)",
    "(unethical and immoral response)",
)
# RLCD-Rescore reads instruction k for affix pair k (`HARMLESS_ANTHROPIC_INSTRUCTIONS`, verbatim).
HARMLESS_INSTRUCTIONS = (
    "Please choose the response that is the most helpful, honest, and harmless.",
    "Please choose the assistant response that is as harmless and ethical as possible. Do NOT choose responses that "
    "are toxic, racist, or sexist, or that encourage or support illegal, violent, or unethical behavior. Above all the "
    "assistant’s response should be wise, peaceful, and ethical.",
    "Compare the degree of harmfulness in the assistant responses and choose the one that’s less harmful. However, "
    "try to avoid choosing responses that are too preachy, obnoxious, or overly-reactive.",
    "Choose the assistant response that is as harmless, helpful, polite, respectful, and thoughtful as possible "
    "without sounding overly-reactive of accusatory.",
    "Please choose the assistant response that’s more ethical and moral. Do NOT choose responses that exhibit "
    "toxicity, racism, sexism or any other form of physical or social harm.",
    "Which of these assistant responses exhibits less harmful and more acceptable behavior? Choose the less harmful "
    "response.",
    "Choose the assistant response that answers the human’s query in a more friendly, amiable, conscientious, and "
    "socially acceptable manner.",
    "Which of these assistant responses is less harmful? Choose the response that a wise, ethical, polite and "
    "friendly person would more likely say.",
    "Choose the response that is less harmful, paying close attention to whether each response encourages illegal, "
    "unethical or immoral activity.",
    "Please consider these assistant responses and choose the one that is less harmful, more age-appropriate, and "
    "more family-friendly.",
    "Choose the response that answers the human in the most thoughtful, respectful and cordial manner.",
    "Compare the assistant responses in terms of toxicity, racism, sexism and social bias, and choose the less "
    "harmful response.",
    "Choose the response that sounds most similar to what a peaceful, ethical, and wise person like Martin Luther "
    "King Jr. or Mahatma Gandhi might say.",
    "Which of the assistant responses is most harmless, helpful, and honest? Choose the best response based on these "
    "criteria.",
    "Choose the assistant response that is more harmless, polite, pleasant, and least likely to offend a "
    "socially-aware audience.",
    "Choose the assistant response that demonstrates more ethical and moral awareness without sounding excessively "
    "condescending, reactive, annoying or condemnatory.",
)


@dataclasses.dataclass(frozen=True)
class AffixSet:
    """Affix pairs of one task: `positive[k]` and `negative[k]` form pair k; `instructions[k]` is RLCD-Rescore's
    scoring instruction for pair k (one instruction for every pair when there is only one)."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    instructions: tuple[str, ...]

    def __post_init__(self):
        if not self.positive or len(self.positive) != len(self.negative):
            raise ValueError(f"{len(self.positive)} positive vs {len(self.negative)} negative affixes; need equal > 0")
        if len(self.instructions) not in (1, len(self.positive)):
            raise ValueError(f"{len(self.instructions)} instructions for {len(self.positive)} affix pairs")

    def __len__(self) -> int:
        return len(self.positive)

    def instruction(self, index: int) -> str:
        """The scoring instruction of affix pair `index` (the same-index rule of RLCD-Rescore)."""
        return self.instructions[index if len(self.instructions) > 1 else 0]


AFFIX_SETS = {
    "harmless": AffixSet(HARMLESS_POSITIVE_AFFIXES, HARMLESS_NEGATIVE_AFFIXES, HARMLESS_INSTRUCTIONS),
    "helpful": AffixSet(
        ("(giving a helpful response)",),
        ("(giving an unhelpful response)",),
        ("Please choose the response that is more helpful.",),
    ),
    # Ours, in RLCD's style: the gold judge is VADER (rewards/gold.py), so the contrast is the review's sentiment.
    "sentiment": AffixSet(
        ("(giving a glowing, enthusiastic review)",),
        ("(giving a harsh, negative review)",),
        ("Please choose the review that is more positive.",),
    ),
    # Ours, for the tiny toy letters task: the tiny pipeline first teaches a random model what these mean.
    "toy": AffixSet(("(accurate)", "(careful)"), ("(careless)", "(sloppy)"), ("Choose the more accurate answer.",)),
}


def affix_set(name: str) -> AffixSet:
    """The affix set called `name`: 'harmless', 'helpful', 'sentiment' or 'toy'."""
    if name not in AFFIX_SETS:
        raise ValueError(f"unknown affix set {name!r}; expected one of {sorted(AFFIX_SETS)}")
    return AFFIX_SETS[name]


def draw_affix_indices(num_prompts: int, num_pairs: int, seed: int) -> np.ndarray:
    """One affix-pair index per prompt, uniform over `num_pairs` (the authors' `random.choice`): int64 `[num_prompts]`.
    Both sides of a prompt use this one index (the same-index rule)."""
    return np.random.default_rng([seed, 7]).integers(num_pairs, size=num_prompts)


def contrast_dialogue_prompts(dialogue: str, positive_affix: str, negative_affix: str) -> tuple[str, str]:
    """(p+, p-) of an HH dialogue that ends with `\\n\\nAssistant:` (RLCD's `create_prompts`).

    p+: the final `\\n\\nAssistant:` -> `\\n\\nAssistant {positive_affix}:`, every earlier one ->
    `\\n\\nAssistant {negative_affix}:`; p-: the mirror image. Raises ValueError when the dialogue does not end
    with `\\n\\nAssistant:` (the authors' string replacement would then silently give every turn the opposite affix).
    """
    if not dialogue.endswith(ASSISTANT_TURN):
        raise ValueError(f"the dialogue must end with {ASSISTANT_TURN!r}; it ends with {dialogue[-40:]!r}")
    earlier = dialogue[: -len(ASSISTANT_TURN)]

    def build(final_affix: str, earlier_affix: str) -> str:
        return earlier.replace(ASSISTANT_TURN, f"\n\nAssistant {earlier_affix}:") + f"\n\nAssistant {final_affix}:"

    return build(positive_affix, negative_affix), build(negative_affix, positive_affix)


def contrast_instruction_prompts(prompt: str, positive_affix: str, negative_affix: str) -> tuple[str, str]:
    """(p+, p-) of a single-turn prompt that a chat template (or plain text) wraps: `prompt + " " + affix`."""
    prompt = prompt.rstrip()
    return f"{prompt} {positive_affix}", f"{prompt} {negative_affix}"


def postprocess_dialogue_output(text: str) -> str | None:
    """The authors' `process_filter_result` on a sampled continuation of a dialogue; None = rejected.

    Needs a following `Human` turn (else None: the model never finished its turn); cuts there; needs a newline or
    `</s>` before it; cuts at the last newline and at the first `</s>`; drops everything up to a first `Assistant:`;
    None when nothing is left.
    """
    if "Human" not in text:
        return None
    text = text[: text.index("Human")]
    if "\n" not in text and "</s>" not in text:
        return None
    if "\n" in text:
        text = text[: text.rindex("\n")].strip()
    if "</s>" in text:
        text = text[: text.index("</s>")].strip()
    if "Assistant:" in text:
        text = text[text.index("Assistant:") + len("Assistant:") :].strip()
    return text or None


def postprocess_chat_output(text: str) -> str | None:
    """A chat model's completion (it ends at its own end-of-turn token): stripped; None when empty."""
    return text.strip() or None


POSTPROCESSORS = {"dialogue": postprocess_dialogue_output, "chat": postprocess_chat_output}


def pair_rows(
    prompts: Sequence[str],
    positive_prompts: Sequence[str],
    negative_prompts: Sequence[str],
    positive_outputs: Sequence[str | None],
    negative_outputs: Sequence[str | None],
    affix_indices: Sequence[int],
) -> list[dict]:
    """RLCD preference rows {prompt, chosen, rejected, positive_prompt, negative_prompt, affix_index}: the p+ output
    chosen, the p- output rejected (labelled by construction). Pairs with a None (rejected or empty) side are dropped.
    `prompt` is the prompt without affixes: what the reward model and the policy see."""
    lengths = {len(x) for x in (prompts, positive_prompts, negative_prompts, positive_outputs, negative_outputs)}
    if len(lengths | {len(affix_indices)}) != 1:
        raise ValueError(f"pair_rows: inputs of different lengths {sorted(lengths | {len(affix_indices)})}")
    return [
        {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "positive_prompt": positive_prompt,
            "negative_prompt": negative_prompt,
            "affix_index": int(index),
        }
        for prompt, positive_prompt, negative_prompt, chosen, rejected, index in zip(
            prompts, positive_prompts, negative_prompts, positive_outputs, negative_outputs, affix_indices
        )
        if chosen and rejected
    ]


def rescore_prompt(conversation: str, instruction: str, response_a: str, response_b: str) -> str:
    """The authors' A/B scoring prompt (`analyze_results`); the label is read from the next token, `A` or `B`."""
    return (
        "Consider the following conversation between a human and an assistant:\n\n\n\n"
        + conversation.strip()
        + "\n\n\n\n"
        + instruction.strip()
        + "\n\n\n\nOptions:\n\n\n\n(A) "
        + response_a.strip()
        + "\n\n\n\n(B) "
        + response_b.strip()
        + "\n\n\n\nThe answer is: ("
    )


def as_conversation(prompt: str) -> str:
    """A prompt as the conversation of the scoring prompt: HH dialogues as they are, a single-turn prompt as
    `Human: {prompt}\\n\\nAssistant:`."""
    prompt = prompt.strip()
    return prompt if prompt.startswith("Human:") else f"Human: {prompt}{ASSISTANT_TURN}"


def rescore_prompts(rows: Sequence[dict], affixes: AffixSet, positive_first: np.ndarray) -> list[str]:
    """RLCD-Rescore scoring prompts of RLCD rows: the chosen (p+) output is option A where `positive_first[i]`,
    option B otherwise (the authors shuffle the two); instruction `affixes.instruction(row['affix_index'])`."""
    if len(positive_first) != len(rows):
        raise ValueError(f"positive_first has {len(positive_first)} entries for {len(rows)} rows")
    prompts = []
    for row, first in zip(rows, positive_first):
        a, b = (row["chosen"], row["rejected"]) if first else (row["rejected"], row["chosen"])
        prompts.append(rescore_prompt(as_conversation(row["prompt"]), affixes.instruction(row["affix_index"]), a, b))
    return prompts


def rescored_rows(rows: Sequence[dict], probabilities: np.ndarray, positive_first: np.ndarray) -> list[dict]:
    """RLCD-Rescore labels: each pair reordered so that `chosen` is the output the scorer prefers.

    probabilities: `[n, 2]` P(A), P(B) per row (`feedback.choice_probabilities(lm, prompts, ("A", "B"))`);
    positive_first: bool `[n]`, the layout `rescore_prompts` used. Adds `preference` = P(chosen) in [0.5, 1] (a soft
    label for `loss.type='soft_label'`; the authors' `win2_prob`) and `positive_win_prob` = P(p+ output preferred).
    A tie (0.5) keeps the construction label.
    """
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.shape != (len(rows), 2):
        raise ValueError(f"probabilities have shape {probabilities.shape}; expected ({len(rows)}, 2)")
    positive_win = np.where(np.asarray(positive_first, bool), probabilities[:, 0], probabilities[:, 1])
    positive_win = positive_win / probabilities.sum(axis=1)
    out = []
    for row, win in zip(rows, positive_win):
        keep = win >= 0.5
        out.append(
            {
                **row,
                "chosen": row["chosen"] if keep else row["rejected"],
                "rejected": row["rejected"] if keep else row["chosen"],
                "preference": float(win if keep else 1.0 - win),
                "positive_win_prob": float(win),
            }
        )
    return out
