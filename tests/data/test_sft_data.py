"""SFT tokenisation (exact arrays on a byte tokenizer), JSONL errors that name file and line, batch order."""

import json

import numpy as np
import pytest

from rlaif_jax.data import batching
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.sft import tokenize_prompt_response, tokenize_source_target
from rlaif_jax.models.byte_tokenizer import byte_tokenizer

EOS = 258  # byte tokenizer: eos = pad = <|im_end|>


def test_collator_exact_arrays_with_eos_equal_to_pad():
    tokenizer = byte_tokenizer()
    examples = tokenize_prompt_response(
        [{"prompt": "ab", "response": "c"}, {"prompt": "x", "response": "yz"}],
        tokenizer,
        max_length=6,
        use_chat_template=False,
    )
    np.testing.assert_array_equal(
        examples.arrays["tokens"], [[97, 98, 99, EOS, EOS, EOS], [120, 121, 122, EOS, EOS, EOS]]
    )
    np.testing.assert_array_equal(examples.arrays["attention_mask"], [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]])
    # The EOS that ends the response is a target even though pad == eos; the padding after it is not.
    np.testing.assert_array_equal(examples.arrays["loss_mask"], [[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0]])


def test_truncated_and_dropped_rows_are_counted_and_the_first_of_each_named(caplog):
    tokenizer = byte_tokenizer()
    rows = [
        {"prompt": "abcdef", "response": "g"},
        {"prompt": "ab", "response": "cdefgh"},
        {"prompt": "a", "response": "b"},
    ]
    examples = tokenize_prompt_response(rows, tokenizer, max_length=5, use_chat_template=False)
    assert (examples.num_dropped, examples.num_truncated, len(examples)) == (1, 1, 2)
    assert "1 responses truncated (first: row 1 (9 tokens)), 1 rows dropped" in caplog.text
    assert "(first: row 0 (prompt 6 tokens))" in caplog.text
    with pytest.raises(ValueError, match=r"every one of 1 rows was dropped.*first: row 0 \(prompt 6 tokens\)"):
        tokenize_prompt_response(rows[:1], tokenizer, max_length=5, use_chat_template=False)
    np.testing.assert_array_equal(examples.arrays["tokens"][0], [97, 98, 99, 100, 101])


def test_jsonl_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "demos.jsonl"
    path.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"demos.jsonl:2: malformed JSON"):
        read_jsonl(str(path), ("prompt", "response"))
    path.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"demos.jsonl:2: missing column 'response'"):
        read_jsonl(str(path), ("prompt", "response"))
    path.write_text(json.dumps({"prompt": "a", "response": ""}) + "\n")
    with pytest.raises(ValueError, match=r"demos.jsonl:1: column 'response' is empty"):
        read_jsonl(str(path), ("prompt", "response"))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_jsonl(str(tmp_path / "missing.jsonl"))


def test_batch_order_resumes_across_epochs_without_repeats():
    num_examples, batch_size = 10, 4  # epochs end mid-batch
    steps = [batching.batch_indices(num_examples, batch_size, step, seed=3) for step in range(10)]
    again = [batching.batch_indices(num_examples, batch_size, step, seed=3) for step in range(5, 10)]
    for a, b in zip(steps[5:], again):
        np.testing.assert_array_equal(a, b)
    flat = np.concatenate(steps)  # 40 draws = 4 full epochs
    for epoch in range(4):
        assert sorted(flat[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert not np.array_equal(flat[:10], flat[10:20])  # reshuffled each epoch


def test_source_target_rows_are_left_padded_sources_and_right_padded_targets_with_eos():
    tokenizer = byte_tokenizer()
    rows = [
        {"prompt": "ab", "response": "xyz"},
        {"prompt": "toolong", "response": "q"},
        {"prompt": "c", "response": "12345"},
    ]
    examples = tokenize_source_target(rows, tokenizer, max_source_length=4, max_target_length=4)
    assert (examples.num_dropped, examples.num_truncated, len(examples)) == (1, 1, 2)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    np.testing.assert_array_equal(examples.arrays["encoder_tokens"][0], [pad, pad, ord("a"), ord("b")])
    np.testing.assert_array_equal(examples.arrays["encoder_attention_mask"][0], [0, 0, 1, 1])
    np.testing.assert_array_equal(examples.arrays["target_tokens"][0], [ord("x"), ord("y"), ord("z"), eos])
    np.testing.assert_array_equal(examples.arrays["target_tokens"][1], [ord(c) for c in "1234"])  # cut, no EOS
    with pytest.raises(ValueError, match="every one of 1 rows was dropped: sources longer than 4 tokens"):
        tokenize_source_target(rows[1:2], tokenizer, max_source_length=4, max_target_length=4)
