"""The labeling prompts, character for character: sample blocks, endings, few-shot delimiters, CoT, d-RLAIF."""

import pytest

from rlaif_jax.feedback import templates
from rlaif_jax.models.byte_tokenizer import byte_tokenizer

BASE_PREAMBLE = (
    "You are an expert summary rater. Given a piece of text and two of its possible summaries, output 1 or 2 to "
    "indicate which summary is better."
)


def test_summarize_base_zero_shot_prompt():
    prompt = templates.pairwise_prompt(templates.pairwise_template("summarize_base"), "POST", "S one", "S two")
    assert prompt == (BASE_PREAMBLE + "\n\nText - POST\nSummary 1 - S one\nSummary 2 - S two\n\nPreferred Summary=")


def test_harmless_two_shot_prompt_has_the_delimiters_and_labels():
    template = templates.pairwise_template("harmless")
    assert template.name == "harmless_base" and template.labels_worse
    prompt = templates.pairwise_prompt(template, "Human: hi\n\nAssistant:", "R1", "R2", num_shots=2)
    first, second = template.exemplars
    expected = "\n\n".join(
        [
            template.preamble,
            "»»»» Example »»»»\n\n"
            f"Context - {first.context}\nResponse 1 - {first.response_1}\nResponse 2 - {first.response_2}"
            "\n\nPreferred Response=2",
            "»»»» Example »»»»\n\n"
            f"Context - {second.context}\nResponse 1 - {second.response_1}\nResponse 2 - {second.response_2}"
            "\n\nPreferred Response=1",
            "»»»» Follow the instructions and the example(s) above »»»»",
            "Context - Human: hi\n\nAssistant:\nResponse 1 - R1\nResponse 2 - R2",
            "Preferred Response=",
        ]
    )
    assert prompt == expected


def test_cot_step1_and_readout():
    template = templates.pairwise_template("summarize_base")
    step1 = templates.pairwise_prompt(template, "POST", "A", "B", cot=True)
    assert step1 == (
        "You are an expert summary rater. Given a piece of text and two of its possible summaries, explain which "
        "summary is better.\n\nText - POST\nSummary 1 - A\nSummary 2 - B\n\nConsider the coherence, accuracy, "
        "coverage, and overall quality of each summary and explain which one is better.\n\nRationale:"
    )
    readout = templates.cot_readout_prompt(template, step1, " Summary 1 is better. \n")
    assert readout == step1 + " Summary 1 is better.\n\nPreferred Summary="


def test_detailed_preamble_names_the_four_axes():
    template = templates.pairwise_template("summarize")
    assert template.name == "summarize_detailed"
    for axis in ("Coherence:", "Accuracy:", "Coverage:", "Overall quality:"):
        assert axis in template.preamble
    assert template.preamble.endswith(
        "output 1 or 2 to indicate which summary best adheres to coherence, accuracy, coverage, and overall quality "
        "as defined above."
    )


def test_chat_template_puts_the_ending_in_the_assistant_turn():
    prompt = templates.pairwise_prompt(
        templates.pairwise_template("helpful"), "C", "A", "B", tokenizer=byte_tokenizer(), use_chat_template=True
    )
    body = templates.pairwise_body(templates.pairwise_template("helpful"), "C", "A", "B")
    assert prompt == f"<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\nPreferred Response="


def test_score_prompt_and_tldr_context():
    context = templates.labeler_context("summarize", "SUBREDDIT: r/x\nTITLE: t\nPOST: p\nTL;DR:")
    assert context == "SUBREDDIT: r/x\nTITLE: t\nPOST: p"
    assert templates.labeler_context("helpful", " Human: hi TL;DR:") == "Human: hi TL;DR:"
    prompt = templates.score_prompt(templates.score_template("summarize"), context, "a summary")
    assert prompt.startswith("You are an expert summary rater. Given a TEXT (completed with a SUBREDDIT and a TITLE)")
    assert prompt.endswith("\n\nSUBREDDIT: r/x\nTITLE: t\nPOST: p\n\nSUMMARY: a summary\n\nSCORE: ")


def test_bad_names_and_shots_raise():
    with pytest.raises(ValueError, match="unknown labeler template 'nope'"):
        templates.pairwise_template("nope")
    with pytest.raises(ValueError, match="unknown d-RLAIF template"):
        templates.score_template("nope")
    with pytest.raises(ValueError, match="num_shots=3"):
        templates.pairwise_prompt(templates.pairwise_template("helpful"), "C", "A", "B", num_shots=3)
    with pytest.raises(ValueError, match="chat template"):
        templates.pairwise_prompt(templates.pairwise_template("helpful"), "C", "A", "B", use_chat_template=True)


def test_summarize_one_shot_cot_follows_table_18():
    template = templates.pairwise_template("summarize_detailed")
    prompt = templates.pairwise_prompt(template, "POST", "S one", "S two", num_shots=1, cot=True)
    exemplar = template.exemplars[0]
    expected = "\n\n".join(
        [
            template.cot_preamble,
            "»»»» Example »»»»\n\n"
            f"Text - {exemplar.context}\nSummary 1 - {exemplar.response_1}\nSummary 2 - {exemplar.response_2}"
            f"\n\nThoughts on Summary 1 -{exemplar.rationale}\n\nPreferred Summary=1",
            "»»»» Follow the instructions and the example(s) above »»»»",
            "Text - POST\nSummary 1 - S one\nSummary 2 - S two",
            template.cot_instruction,
            "Thoughts on Summary 1 -",  # the sample's step-1 ending (Table 18)
        ]
    )
    assert prompt == expected
    # One `Axis - score. Rationale:` line per axis for each summary.
    assert exemplar.rationale.startswith("\nCoherence - 9. Rationale: ")
    for axis in ("Coherence", "Accuracy", "Coverage", "Overall Quality"):
        assert exemplar.rationale.count(f"\n{axis} - ") == 2
    assert "\n\nThoughts on Summary 2 -\n" in exemplar.rationale
    # Zero-shot CoT keeps Table 17's `Rationale:`; dialogue exemplars keep `Rationale: ...`.
    zero_shot = templates.pairwise_prompt(template, "POST", "a", "b", cot=True)
    assert zero_shot.endswith("which one is better.\n\nRationale:")
    helpful = templates.pairwise_template("helpful")
    two_shot = templates.pairwise_prompt(helpful, "Human: hi\n\nAssistant:", "R1", "R2", num_shots=2, cot=True)
    assert f"\n\nRationale: {helpful.exemplars[0].rationale.strip()}\n\nPreferred Response=1" in two_shot
    assert two_shot.endswith("\n\nRationale:")
