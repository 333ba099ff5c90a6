"""The pairwise labeler: position debiasing (exact symmetry), the harmless flip, and the two-step CoT path."""

import numpy as np
import pytest

from rlaif_jax import sampling
from rlaif_jax.feedback import choice_probabilities, templates
from rlaif_jax.feedback.labeler import debiased_preference, label_pairs

CONTEXTS = ["Human: How long to boil an egg?\n\nAssistant:", "Human: Capital of France?\n\nAssistant:"]
GOOD = ["About nine minutes.", "Paris."]
BAD = ["Eggs come from hens.", "Berlin."]


def test_debiased_preference_by_hand():
    original, swapped = np.array([[0.8, 0.2], [0.3, 0.7]]), np.array([[0.6, 0.4], [0.9, 0.1]])
    # P(a) = (P("1" | a first) + P("2" | b first)) / 2
    np.testing.assert_allclose(debiased_preference(original, swapped, labels_worse=False), [0.6, 0.2])
    np.testing.assert_allclose(debiased_preference(original, swapped, labels_worse=True), [0.4, 0.8])


def test_swap_averaging_is_exactly_symmetric(byte_lm, record_diff):
    lm, _ = byte_lm
    forward = label_pairs(lm, "helpful", CONTEXTS, GOOD, BAD)
    backward = label_pairs(lm, "helpful", CONTEXTS, BAD, GOOD)
    asymmetry = np.abs(forward.preference + backward.preference - 1).max()
    record_diff("max |P(a>b) + P(b>a) - 1|", asymmetry, 1e-12)
    assert asymmetry <= 1e-12
    np.testing.assert_array_equal(forward.probs_original, backward.probs_swapped)
    np.testing.assert_array_equal(forward.probs_swapped, backward.probs_original)
    # The random labeler is position-biased: one order alone is not symmetric, the average is.
    assert np.abs(forward.probs_original[:, 0] + backward.probs_original[:, 0] - 1).max() > 1e-3


@pytest.mark.parametrize("task", ["helpful", "harmless"])
def test_preference_is_the_average_of_the_two_prompts(byte_lm, task):
    lm, _ = byte_lm
    template = templates.pairwise_template(task)
    labels = label_pairs(lm, template, CONTEXTS, GOOD, BAD, num_shots=1)
    a_first = [templates.pairwise_prompt(template, c, g, b, num_shots=1) for c, g, b in zip(CONTEXTS, GOOD, BAD)]
    b_first = [templates.pairwise_prompt(template, c, b, g, num_shots=1) for c, g, b in zip(CONTEXTS, GOOD, BAD)]
    p_a_first, p_b_first = choice_probabilities(lm, a_first), choice_probabilities(lm, b_first)
    named_a = (p_a_first[:, 0] + p_b_first[:, 1]) / 2
    expected = 1 - named_a if task == "harmless" else named_a  # harmless asks for the MORE harmful response
    # Float32 forward passes over differently composed batches agree to ~1e-7.
    np.testing.assert_allclose(labels.preference, expected, atol=1e-6)
    np.testing.assert_allclose(labels.probs_original, p_a_first, atol=1e-6)
    assert labels.rationales_original is None


def test_cot_with_a_fixed_rationale_reads_after_prompt_rationale_ending(byte_lm):
    lm, _ = byte_lm
    labels = label_pairs(
        lm, "summarize_base", ["POST"], ["good"], ["bad"], cot=True, rationales=(["R one."], ["R two."])
    )
    step1_intro = (
        "You are an expert summary rater. Given a piece of text and two of its possible summaries, explain which "
        "summary is better.\n\nText - POST\nSummary 1 - {}\nSummary 2 - {}\n\nConsider the coherence, accuracy, "
        "coverage, and overall quality of each summary and explain which one is better.\n\nRationale:"
    )
    readouts = [
        step1_intro.format("good", "bad") + "R one.\n\nPreferred Summary=",
        step1_intro.format("bad", "good") + "R two.\n\nPreferred Summary=",
    ]
    probs = choice_probabilities(lm, readouts)
    np.testing.assert_allclose(labels.probs_original, probs[:1], atol=1e-6)
    np.testing.assert_allclose(labels.probs_swapped, probs[1:], atol=1e-6)
    np.testing.assert_allclose(labels.preference, [(probs[0, 0] + probs[1, 1]) / 2], atol=1e-6)
    assert labels.rationales_original == ["R one."] and labels.rationales_swapped == ["R two."]


def test_cot_decodes_rationales_greedily(byte_lm):
    lm, _ = byte_lm
    decoded = label_pairs(lm, "helpful", CONTEXTS, GOOD, BAD, cot=True, cot_max_new_tokens=6)
    step1 = [templates.pairwise_prompt(templates.pairwise_template("helpful"), CONTEXTS[0], GOOD[0], BAD[0], cot=True)]
    expected = sampling.generate(lm, [lm.tokenizer(step1[0])["input_ids"]], max_new_tokens=6, rng=None, temperature=0)
    assert decoded.rationales_original[0] == expected.texts[0]
    fixed = label_pairs(
        lm,
        "helpful",
        CONTEXTS,
        GOOD,
        BAD,
        cot=True,
        rationales=(decoded.rationales_original, decoded.rationales_swapped),
    )
    np.testing.assert_allclose(decoded.preference, fixed.preference, atol=1e-6)


def test_bad_input_raises(byte_lm):
    lm, _ = byte_lm
    with pytest.raises(ValueError, match="differ in length"):
        label_pairs(lm, "helpful", CONTEXTS, GOOD, BAD[:1])
    with pytest.raises(ValueError, match="only used with cot=True"):
        label_pairs(lm, "helpful", CONTEXTS, GOOD, BAD, rationales=(["x", "y"], ["x", "y"]))
    with pytest.raises(ValueError, match="lists of 2 each"):
        label_pairs(lm, "helpful", CONTEXTS, GOOD, BAD, cot=True, rationales=(["x"], ["y"]))
