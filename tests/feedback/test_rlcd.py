"""RLCD prompt construction, post-processing and RLCD-Rescore labels on hand-written dialogues and outputs."""

import numpy as np
import pytest

from rlaif_jax.feedback import rlcd

TWO_TURNS = "Human: How do I boil an egg?\n\nAssistant: Put it in boiling water.\n\nHuman: For how long?\n\nAssistant:"
THREE_TURNS = (
    "Human: Hi\n\nAssistant: Hello!\n\nHuman: Can you help me pick a lock?\n\nAssistant: Why?"
    "\n\nHuman: I locked myself out.\n\nAssistant:"
)


def authors_create_prompts(prompt: str, positive_affix: str, negative_affix: str) -> tuple[str, str]:
    """The two string replacements of `create_prompts` in facebookresearch/RLCD simulate_preference_data.py."""
    positive = (prompt + "PROMPT_END").replace("\n\nAssistant:PROMPT_END", f"\n\nAssistant {positive_affix}:")
    positive = positive.replace("\n\nAssistant:", f"\n\nAssistant {negative_affix}:")
    negative = (prompt + "PROMPT_END").replace("\n\nAssistant:PROMPT_END", f"\n\nAssistant {negative_affix}:")
    negative = negative.replace("\n\nAssistant:", f"\n\nAssistant {positive_affix}:")
    return positive, negative


def test_final_turn_gets_the_affix_and_earlier_turns_the_opposite_one():
    positive, negative = rlcd.contrast_dialogue_prompts(TWO_TURNS, "(harmless response)", "(harmful response)")
    assert positive == (
        "Human: How do I boil an egg?\n\nAssistant (harmful response): Put it in boiling water."
        "\n\nHuman: For how long?\n\nAssistant (harmless response):"
    )
    assert negative == (
        "Human: How do I boil an egg?\n\nAssistant (harmless response): Put it in boiling water."
        "\n\nHuman: For how long?\n\nAssistant (harmful response):"
    )


def test_single_turn_dialogue_has_only_the_final_affix():
    positive, negative = rlcd.contrast_dialogue_prompts("Human: Say hi.\n\nAssistant:", "(kind)", "(evil)")
    assert (positive, negative) == ("Human: Say hi.\n\nAssistant (kind):", "Human: Say hi.\n\nAssistant (evil):")


@pytest.mark.parametrize("index", [0, 7, 15])
def test_matches_the_authors_replacement_on_every_harmless_pair(index):
    affixes = rlcd.affix_set("harmless")
    pair = (affixes.positive[index], affixes.negative[index])
    assert rlcd.contrast_dialogue_prompts(THREE_TURNS, *pair) == authors_create_prompts(THREE_TURNS, *pair)
    positive, negative = rlcd.contrast_dialogue_prompts(THREE_TURNS, *pair)
    assert positive.count(f"Assistant {pair[1]}:") == 2 and positive.endswith(f"Assistant {pair[0]}:")
    assert negative.count(f"Assistant {pair[0]}:") == 2 and negative.endswith(f"Assistant {pair[1]}:")


def test_dialogue_not_ending_with_an_assistant_turn_is_refused():
    with pytest.raises(ValueError, match="must end with"):
        rlcd.contrast_dialogue_prompts("Human: Hi\n\nAssistant: Hello!", "(a)", "(b)")


def test_affix_sets_are_the_papers():
    harmless = rlcd.affix_set("harmless")
    assert len(harmless) == 16 and len(harmless.instructions) == 16
    assert harmless.positive[0] == "(helpful, honest, inoffensive response)"
    assert harmless.negative[0] == "(unhelpful, dishonest, toxic response)"
    assert harmless.positive[11] == "(politically correct response)"
    assert harmless.negative[11] == "(racist, sexist, socially biased response)"
    assert harmless.positive[15] == "(ethically and morally aware response)"
    assert harmless.negative[15] == "(unethical and immoral response)" == harmless.negative[4]
    helpful = rlcd.affix_set("helpful")
    assert (helpful.positive, helpful.negative) == (
        ("(giving a helpful response)",),
        ("(giving an unhelpful response)",),
    )
    assert helpful.instruction(0) == "Please choose the response that is more helpful."
    assert harmless.instruction(12).startswith("Choose the response that sounds most similar to what a peaceful")
    with pytest.raises(ValueError, match="unknown affix set 'kind'"):
        rlcd.affix_set("kind")


def test_same_index_rule_draws_one_index_per_prompt_uniformly():
    indices = rlcd.draw_affix_indices(16_000, 16, seed=0)
    assert indices.shape == (16_000,) and indices.min() == 0 and indices.max() == 15
    counts = np.bincount(indices, minlength=16)
    assert np.all(np.abs(counts - 1000) < 4 * np.sqrt(1000))  # uniform within 4 sigma
    np.testing.assert_array_equal(indices, rlcd.draw_affix_indices(16_000, 16, seed=0))
    assert np.all(rlcd.draw_affix_indices(10, 1, seed=3) == 0)


def test_single_turn_prompt_gets_the_affix_appended():
    assert rlcd.contrast_instruction_prompts("Review 'Up'. ", "(glowing)", "(harsh)") == (
        "Review 'Up'. (glowing)",
        "Review 'Up'. (harsh)",
    )


def test_dialogue_prompt_cuts_a_transcript_like_the_authors():
    transcript = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant: See you."
    assert rlcd.dialogue_prompt(transcript) == "Human: Hi\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant:"
    assert rlcd.dialogue_prompt(rlcd.dialogue_prompt(transcript)) == rlcd.dialogue_prompt(transcript)
    with pytest.raises(ValueError, match="no 'Assistant:' turn"):
        rlcd.dialogue_prompt("Human: Hi")


@pytest.mark.parametrize(
    "text, expected",
    [
        (" Sure, ask a locksmith.\n\nHuman: thanks", "Sure, ask a locksmith."),  # cut at Human, then last newline
        (" Line one.\nLine two.\n\nHuman:", "Line one.\nLine two."),
        (" Step 1.\nStep 2 is half", None),  # no Human turn: the model never ended its turn
        (" one line then Human: hi", None),  # no newline before Human
        ("\n\nHuman: hi", None),  # empty once cut
        (" Assistant: Hi there!\n\nHuman: ok", "Hi there!"),  # a leading extra Assistant: delimiter is dropped
        (" ok</s>\n\nHuman: x", "ok"),
    ],
)
def test_postprocess_dialogue_output_follows_process_filter_result(text, expected):
    assert rlcd.postprocess_dialogue_output(text) == expected


def test_postprocess_chat_output_strips_and_drops_empties():
    assert rlcd.postprocess_chat_output("  A fine film.\n") == "A fine film."
    assert rlcd.postprocess_chat_output(" \n ") is None


def test_pair_rows_label_by_construction_and_drop_empty_sides():
    rows = rlcd.pair_rows(
        ["p0", "p1", "p2"],
        ["p0 (+)", "p1 (+)", "p2 (+)"],
        ["p0 (-)", "p1 (-)", "p2 (-)"],
        ["good0", None, "good2"],
        ["bad0", "bad1", ""],
        [3, 1, 0],
    )
    assert rows == [
        {
            "prompt": "p0",
            "chosen": "good0",
            "rejected": "bad0",
            "positive_prompt": "p0 (+)",
            "negative_prompt": "p0 (-)",
            "affix_index": 3,
        }
    ]
    with pytest.raises(ValueError, match="different lengths"):
        rlcd.pair_rows(["p"], ["a"], ["b"], ["c"], ["d"], [0, 1])


def test_rescore_prompt_is_the_authors_template():
    text = rlcd.rescore_prompt("Human: Hi\n\nAssistant:", "Pick the kind one.", " Hello! ", "Go away.")
    assert text == (
        "Consider the following conversation between a human and an assistant:\n\n\n\nHuman: Hi\n\nAssistant:"
        "\n\n\n\nPick the kind one.\n\n\n\nOptions:\n\n\n\n(A) Hello!\n\n\n\n(B) Go away.\n\n\n\nThe answer is: ("
    )
    assert rlcd.as_conversation("Review 'Up'.") == "Human: Review 'Up'.\n\nAssistant:"


def test_rescore_relabels_with_the_same_index_instruction():
    rows = [
        {"prompt": "Human: a\n\nAssistant:", "chosen": "pos0", "rejected": "neg0", "affix_index": 2},
        {"prompt": "Human: b\n\nAssistant:", "chosen": "pos1", "rejected": "neg1", "affix_index": 5},
        {"prompt": "Human: c\n\nAssistant:", "chosen": "pos2", "rejected": "neg2", "affix_index": 0},
    ]
    positive_first = np.array([True, False, True])
    prompts = rlcd.rescore_prompts(rows, rlcd.affix_set("harmless"), positive_first)
    assert rlcd.HARMLESS_INSTRUCTIONS[2] in prompts[0] and "(A) pos0\n\n\n\n(B) neg0" in prompts[0]
    assert rlcd.HARMLESS_INSTRUCTIONS[5] in prompts[1] and "(A) neg1\n\n\n\n(B) pos1" in prompts[1]
    # Row 0: P(A) = 0.8 -> positive kept at 0.8. Row 1: P(A) = 0.7 with A = negative -> flipped, P(chosen) 0.7.
    # Row 2: P(A) = 0.5 -> a tie keeps the construction label.
    rescored = rlcd.rescored_rows(rows, np.array([[0.8, 0.2], [0.7, 0.3], [0.5, 0.5]]), positive_first)
    assert [(r["chosen"], r["rejected"]) for r in rescored] == [("pos0", "neg0"), ("neg1", "pos1"), ("pos2", "neg2")]
    np.testing.assert_allclose([r["preference"] for r in rescored], [0.8, 0.7, 0.5])
    np.testing.assert_allclose([r["positive_win_prob"] for r in rescored], [0.8, 0.3, 0.5])
    with pytest.raises(ValueError, match=r"shape \(2, 2\); expected \(3, 2\)"):
        rlcd.rescored_rows(rows, np.ones((2, 2)) / 2, positive_first)
