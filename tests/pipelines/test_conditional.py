"""Conditional training: quantile tags by hand, the KL against the unprefixed reference, and on the toy task the good
prefix raising the gold reward over the SFT start (the bad prefix lowering it) at bounded KL."""

import json
import os

import jax
import numpy as np
import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.models.setup import build_model
from rlaif_jax.pipelines.conditional import left_pad, make_conditional_kl_fn, tag_by_quantile, tagged_rows
from rlaif_jax.train import rollout as rollouts


def test_tag_by_quantile_by_hand():
    # 8 distinct rewards 0..7: the 0.75 quantile is 5.25 (linear interpolation) and the 0.25 quantile 1.75.
    tags = tag_by_quantile(np.arange(8.0), good_fraction=0.25, bad_fraction=0.25)
    assert tags.tolist() == ["bad", "bad", "", "", "", "", "good", "good"]
    # Ties: quantiles 0.625 and 0.375; every 0.5 stays untagged, both 1s are good and both 0s bad.
    tags = tag_by_quantile(np.array([0.5, 1, 0, 0.5, 0.5, 0, 1, 0.5]), good_fraction=0.25, bad_fraction=0.25)
    assert tags.tolist() == ["", "good", "bad", "", "", "bad", "good", ""]
    # One threshold (fractions summing to 1): median 2.5 splits [1, 2, 3, 4] in half.
    tags = tag_by_quantile(np.array([4.0, 1, 3, 2]), good_fraction=0.5, bad_fraction=0.5)
    assert tags.tolist() == ["good", "bad", "good", "bad"]
    with pytest.raises(ValueError, match="no spread"):
        tag_by_quantile(np.full(6, 0.5), good_fraction=0.25, bad_fraction=0.25)
    with pytest.raises(ValueError, match="sum <= 1"):
        tag_by_quantile(np.arange(4.0), good_fraction=0.75, bad_fraction=0.5)


def test_tagged_rows_prefix_the_prompt_and_drop_the_middle():
    rows = [
        {"prompt": "letter: a", "response": "aaaaaa", "reward": 1.0, "tag": "good"},
        {"prompt": "letter: a", "response": "abcabc", "reward": 0.33, "tag": ""},
        {"prompt": "letter: b", "response": "cccccc", "reward": 0.0, "tag": "bad"},
    ]
    out = tagged_rows(rows, {"good": "<|good|> ", "bad": "<|bad|> "})
    assert out == [
        {"prompt": "<|good|> letter: a", "response": "aaaaaa"},
        {"prompt": "<|bad|> letter: b", "response": "cccccc"},
    ]
    with pytest.raises(ValueError, match=r"data.jsonl:4: tag 'great'"):
        tagged_rows([{**rows[0], "tag": "great", "_source": "data.jsonl:4"}], {"good": "g", "bad": "b"})


def test_left_pad_by_hand():
    tokens, mask = left_pad([[5, 6], [7, 8, 9]], 4, pad_id=0)
    np.testing.assert_array_equal(tokens, [[0, 0, 5, 6], [0, 7, 8, 9]])
    np.testing.assert_array_equal(mask, [[False, False, True, True], [False, True, True, True]])


def test_conditional_kl_reads_the_reference_without_the_prefix():
    lm = build_model(config_defaults.model("tiny"), None, None)
    encode = lambda text: list(lm.tokenizer(text)["input_ids"])  # noqa: E731
    plain = ["letter: a", "letter: b"]
    prefixed = ["<|good|> " + text for text in plain]
    rollout = rollouts.sample_rollout(
        lm,
        prefixed,
        [encode(text) for text in prefixed],
        lambda prompts, completions: np.zeros(len(completions)),
        rng=jax.random.key(0),
        max_new_tokens=4,
        temperature=1.0,
        prompt_length=20,
    )
    plain_tokens, plain_mask = left_pad([encode(text) for text in plain], 20, pad_id=lm.config.pad_token_id)
    kl_fn = make_conditional_kl_fn(lm.module, 20, plain_tokens, plain_mask)
    log_ratio = np.asarray(kl_fn(lm.params, lm.params, rollout.tokens, rollout.attention_mask))
    # Same params, different contexts: log p(y | prefix, x) - log p(y | x), each computed directly.
    logprobs = jax.jit(lambda tokens, mask: rollouts.response_logprobs(lm.module, lm.params, tokens, mask, 20))
    with_prefix = logprobs(rollout.tokens, rollout.attention_mask)
    plain_rows = rollout.tokens.copy()
    plain_rows[:, :20] = plain_tokens
    plain_rows_mask = rollout.attention_mask.copy()
    plain_rows_mask[:, :20] = plain_mask
    without = logprobs(plain_rows, plain_rows_mask)
    np.testing.assert_allclose(log_ratio, np.asarray(with_prefix) - np.asarray(without), atol=1e-6)
    assert np.abs(log_ratio[rollout.response_mask]).max() > 1e-3  # the prefix changes the context
    # With the reference's own prompts in the rollout the ratio is exactly 0.
    zero = np.asarray(kl_fn(lm.params, lm.params, plain_rows, plain_rows_mask))
    np.testing.assert_array_equal(zero, 0.0)


@pytest.mark.slow
def test_good_prefix_raises_toy_gold_over_the_sft_start(sft_model, tmp_path, record_diff):
    config = config_defaults.load_config_file("conditional", "tiny")
    config.model.name = sft_model
    config.sft_first = False
    results = pipelines.run(config, str(tmp_path))
    start, good, bad = results["start"], results["good"], results["bad"]
    assert start["kl"] == 0.0
    gain = record_diff("gold with <|good|> - SFT start", good["gold_reward"] - start["gold_reward"], 0.08, ">")
    assert gain > 0.08, results  # measured 0.48 -> 0.65
    assert record_diff("gold with <|good|> - with <|bad|>", good["gold_reward"] - bad["gold_reward"], 0.2, ">") > 0.2
    assert record_diff("KL to the SFT start with <|good|>", good["kl"], 5.0) < 5.0
    data = [json.loads(line) for line in open(tmp_path / "data.jsonl")]
    assert len(data) == 256 * 4  # every train prompt, 4 samples each
    rewards = np.array([row["reward"] for row in data])
    assert [row["tag"] for row in data] == tag_by_quantile(rewards, good_fraction=0.25, bad_fraction=0.25).tolist()
    assert results["data"]["num_good"] == sum(row["tag"] == "good" for row in data)
    assert results["data"]["good_reward"] > good["gold_reward"] > start["gold_reward"]  # below what it imitates
    # A re-run reads everything back: the data file is not redrawn and the results are the same.
    modified = os.path.getmtime(tmp_path / "data.jsonl")
    assert pipelines.run(config, str(tmp_path)) == results
    assert os.path.getmtime(tmp_path / "data.jsonl") == modified


def test_config_sizes():
    paper = config_defaults.load_config_file("conditional", "paper")
    assert (paper.conditional.good_prefix, paper.conditional.bad_prefix) == ("<|good|>", "<|bad|>")
    assert config_defaults.load_config_file("conditional", "smollm2").conditional.gold_reward == "sentiment"
    with pytest.raises(ValueError, match="unknown argument 'huge'"):
        config_defaults.load_config_file("conditional", "huge")
