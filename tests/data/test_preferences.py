"""Preference tokenisation (exact arrays on the byte tokenizer), JSONL errors naming file:line and column, counts."""

import json
import logging

import numpy as np
import pytest

from rlaif_jax.data import preferences
from rlaif_jax.data.toy import toy_reward
from rlaif_jax.models.byte_tokenizer import byte_tokenizer

EOS = 258  # byte tokenizer: eos = pad = <|im_end|>
IM_START = 257


def write_jsonl(path, rows) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def test_pairs_exact_arrays():
    rows = [
        {"prompt": "ab", "chosen": "c", "rejected": "de", "preference": 0.75, "margin": 0.5},
        {"prompt": "x", "chosen": "yz", "rejected": "w"},
    ]
    examples = preferences.tokenize_pairs(rows, byte_tokenizer(), max_length=6, use_chat_template=False)
    arrays = examples.arrays
    np.testing.assert_array_equal(
        arrays["chosen_tokens"], [[97, 98, 99, EOS, EOS, EOS], [120, 121, 122, EOS, EOS, EOS]]
    )
    np.testing.assert_array_equal(arrays["chosen_attention_mask"], [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(
        arrays["rejected_tokens"], [[97, 98, 100, 101, EOS, EOS], [120, 119, EOS, EOS, EOS, EOS]]
    )
    np.testing.assert_array_equal(arrays["rejected_attention_mask"], [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(arrays["preference"], np.array([0.75, 1.0], np.float32))
    np.testing.assert_array_equal(arrays["margin"], np.array([0.5, 0.0], np.float32))
    assert arrays["chosen_tokens"].dtype == np.int32 and arrays["chosen_attention_mask"].dtype == bool
    assert (examples.num_truncated, examples.num_dropped, len(examples), examples.ranked) == (0, 0, 2, False)


def test_pairs_with_chat_template_wrap_the_prompt():
    tokenizer = byte_tokenizer()
    examples = preferences.tokenize_pairs(
        [{"prompt": "a", "chosen": "b", "rejected": "c"}], tokenizer, max_length=32, use_chat_template=True
    )
    prompt = [IM_START, *b"user\na", EOS, *b"\n", IM_START, *b"assistant\n"]
    length = len(prompt) + 2
    np.testing.assert_array_equal(examples.arrays["chosen_tokens"][0, :length], [*prompt, ord("b"), EOS])
    np.testing.assert_array_equal(examples.arrays["rejected_tokens"][0, :length], [*prompt, ord("c"), EOS])
    assert examples.arrays["chosen_attention_mask"][0].sum() == length


def test_rankings_exact_arrays_with_variable_k():
    rows = [{"prompt": "a", "responses": ["b", "cd", "e"]}, {"prompt": "f", "responses": ["gh", "i"]}]
    examples = preferences.tokenize_rankings(rows, byte_tokenizer(), max_length=4, use_chat_template=False)
    np.testing.assert_array_equal(
        examples.arrays["tokens"],
        [
            [[97, 98, EOS, EOS], [97, 99, 100, EOS], [97, 101, EOS, EOS]],
            [[102, 103, 104, EOS], [102, 105, EOS, EOS], [EOS, EOS, EOS, EOS]],
        ],
    )
    np.testing.assert_array_equal(
        examples.arrays["attention_mask"],
        [[[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0]], [[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]]],
    )
    np.testing.assert_array_equal(examples.arrays["valid"], [[1, 1, 1], [1, 1, 0]])
    assert examples.ranked and len(examples) == 2
    wider = preferences.tokenize_rankings(
        rows, byte_tokenizer(), max_length=4, use_chat_template=False, num_responses=5
    )
    assert wider.arrays["tokens"].shape == (2, 5, 4)
    with pytest.raises(ValueError, match=r"3 responses, more than num_responses=2"):
        preferences.tokenize_rankings(rows, byte_tokenizer(), max_length=4, use_chat_template=False, num_responses=2)


def test_truncated_and_dropped_rows_are_counted_and_logged(caplog):
    rows = [
        {"prompt": "abcdef", "chosen": "g", "rejected": "h"},  # prompt fills max_length: dropped
        {"prompt": "ab", "chosen": "c", "rejected": "defgh"},  # rejected cut: truncated once
        {"prompt": "a", "chosen": "bcdefg", "rejected": "hijklm"},  # both cut: still one truncated row
        {"prompt": "a", "chosen": "b", "rejected": "c"},
    ]
    with caplog.at_level(logging.WARNING):
        examples = preferences.tokenize_pairs(rows, byte_tokenizer(), max_length=5, use_chat_template=False)
    assert (examples.num_dropped, examples.num_truncated, len(examples)) == (1, 2, 3)
    assert "2 rows with a response truncated, 1 rows dropped" in caplog.text
    np.testing.assert_array_equal(examples.arrays["rejected_tokens"][0], [97, 98, 100, 101, 102])  # no EOS left
    ranked = [{"prompt": "abcdef", "responses": ["g", "h"]}, {"prompt": "a", "responses": ["bcdefgh", "i"]}]
    examples = preferences.tokenize_rankings(ranked, byte_tokenizer(), max_length=5, use_chat_template=False)
    assert (examples.num_dropped, examples.num_truncated, len(examples)) == (1, 1, 1)
    with pytest.raises(ValueError, match="every one of 1 rows was dropped"):
        preferences.tokenize_pairs(rows[:1], byte_tokenizer(), max_length=5, use_chat_template=False)


def test_pairwise_jsonl_defaults_and_errors_name_file_line_and_column(tmp_path):
    path = write_jsonl(
        tmp_path / "prefs.jsonl",
        [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a", "rejected": "b", "margin": 2}],
    )
    rows = preferences.read_pairwise_jsonl(path)
    assert [(row["preference"], row["margin"]) for row in rows] == [(1.0, 0.0), (1.0, 2.0)]
    assert rows[1]["_source"].endswith("prefs.jsonl:2")
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    cases = [
        ([good, "{not json"], r"prefs.jsonl:2: malformed JSON \(.* at column 2\)"),
        ([good, {"prompt": "p", "chosen": "a"}], r"prefs.jsonl:2: missing column 'rejected'"),
        ([{**good, "chosen": " "}], r"prefs.jsonl:1: column 'chosen' is empty"),
        ([{**good, "preference": 1.5}], r"prefs.jsonl:1: column 'preference' must be a number in \[0, 1\], got 1.5"),
        ([good, {**good, "margin": "big"}], r"prefs.jsonl:2: column 'margin' must be a finite number, got 'big'"),
    ]
    for lines, message in cases:
        write_jsonl(tmp_path / "prefs.jsonl", lines)
        with pytest.raises(ValueError, match=message):
            preferences.read_pairwise_jsonl(path)


def test_soft_labels_need_the_preference_column_on_every_row(tmp_path):
    good = {"prompt": "p", "chosen": "a", "rejected": "b", "preference": 0.7}
    path = write_jsonl(tmp_path / "labels.jsonl", [good, {"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert len(preferences.read_pairwise_jsonl(path)) == 2  # hard labels: a missing preference means 'chosen'
    with pytest.raises(ValueError, match=r"labels.jsonl:2: missing column 'preference' \(soft labels"):
        preferences.read_pairwise_jsonl(path, require_preference=True)


def test_ranked_jsonl_errors_name_file_line_and_column(tmp_path):
    path = write_jsonl(tmp_path / "ranked.jsonl", [{"prompt": "p", "responses": ["a", "b", "c"]}])
    assert preferences.read_ranked_jsonl(path)[0]["responses"] == ["a", "b", "c"]
    cases = [
        ([{"prompt": "p", "chosen": "a", "rejected": "b"}], r"ranked.jsonl:1: missing column 'responses'"),
        ([{"prompt": "p", "responses": ["a"]}], r"ranked.jsonl:1: column 'responses' must be a list of >= 2"),
        ([{"prompt": "p", "responses": ["a", "b"]}, {"prompt": "p", "responses": ["a", ""]}], r":2: .*\[1\] is empty"),
        ([{"responses": ["a", "b"]}], r"ranked.jsonl:1: missing column 'prompt'"),
    ]
    for lines, message in cases:
        write_jsonl(tmp_path / "ranked.jsonl", lines)
        with pytest.raises(ValueError, match=message):
            preferences.read_ranked_jsonl(path)


def test_toy_pairs_prefer_the_higher_gold_reward():
    rows = preferences.toy_pairwise_rows(200, seed=3, noise=0.5)
    assert len(rows) == 200
    assert all(toy_reward(row["prompt"], row["chosen"]) > toy_reward(row["prompt"], row["rejected"]) for row in rows)
    assert rows == preferences.toy_pairwise_rows(200, seed=3, noise=0.5)
    assert rows != preferences.toy_pairwise_rows(200, seed=4, noise=0.5)
    ranked = preferences.toy_ranked_rows(50, seed=3, noise=0.5, num_responses=4)
    for row in ranked:
        rewards = [toy_reward(row["prompt"], response) for response in row["responses"]]
        assert len(rewards) == 4 and rewards == sorted(set(rewards), reverse=True)
