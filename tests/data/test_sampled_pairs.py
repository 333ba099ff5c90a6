"""Pairs and groups from scored policy samples: hand-worked pairings, rows, the samples file and its errors."""

import json

import numpy as np
import pytest

from rlaif_jax.data import preferences, sampled_pairs
from rlaif_jax.losses import rso
from rlaif_jax.models.byte_tokenizer import byte_tokenizer

EOS = 258  # byte tokenizer: eos = pad


def test_best_worst_pairs():
    assert sampled_pairs.best_worst_pairs([0.2, 0.9, 0.1, 0.5]) == [(1, 2)]
    assert sampled_pairs.best_worst_pairs([0.5, 0.9, 0.9, 0.1, 0.1]) == [(1, 3)]  # first index on ties
    assert sampled_pairs.best_worst_pairs([0.3, 0.3, 0.3]) == []


def test_all_pairs_drop_ties():
    # DPO §6.1: 4 completions with distinct rewards -> 6 pairs.
    assert sampled_pairs.all_pairs([0.1, 0.4, 0.3, 0.2]) == [(1, 0), (2, 0), (3, 0), (1, 2), (1, 3), (2, 3)]
    assert sampled_pairs.all_pairs([1.0, 0.0, 1.0]) == [(0, 1), (2, 1)]


def test_tournament_pairs_worked_example():
    # Round 1: (0,1)->1, (2,3)->2, (4,5)->5, (6,7)->6; round 2: (1,2)->2, (5,6)->5; final: (2,5)->2. 7 = m - 1 matches.
    rewards = [0.1, 0.5, 0.9, 0.3, 0.2, 0.6, 0.4, 0.0]
    assert sampled_pairs.tournament_pairs(rewards) == [(1, 0), (2, 3), (5, 4), (6, 7), (2, 1), (5, 6), (2, 5)]
    # Odd m: index 2 has a bye in round 1; a tied match (0 vs 1) is played (earlier index wins) but not a pair.
    assert sampled_pairs.tournament_pairs([0.5, 0.5, 0.7]) == [(2, 0)]
    assert sampled_pairs.tournament_pairs([0.4]) == []
    # The same matches as RSO's tournament rank over candidates 0..K-1 (losses/rso.py), with ties, odd and even K.
    rng = np.random.default_rng(0)
    for num_candidates in (2, 5, 8, 13):
        rewards = rng.integers(0, 4, num_candidates).astype(float)
        expected = rso.make_pairs(range(num_candidates), rewards, method="tournament")
        assert sampled_pairs.tournament_pairs(rewards) == expected
    with pytest.raises(ValueError, match="pairing='random'"):
        sampled_pairs.pair_indices([0.0, 1.0], "random")


def test_pairwise_and_ranked_rows():
    samples = [
        {"prompt": "letter: a", "responses": ["ab", "aa", "bb"], "rewards": [0.5, 1.0, 0.0]},
        {"prompt": "letter: b", "responses": ["b", "b"], "rewards": [0.2, 0.2]},
    ]
    pairs = [sampled_pairs.pair_indices(s["rewards"], "all_pairs") for s in samples]
    rows = sampled_pairs.pairwise_rows(samples, pairs)
    assert [(r["chosen"], r["rejected"], r["best_response"]) for r in rows] == [
        ("aa", "ab", "aa"),
        ("ab", "bb", "aa"),
        ("aa", "bb", "aa"),
    ]
    assert [(r["chosen_reward"], r["rejected_reward"]) for r in rows] == [(1.0, 0.5), (0.5, 0.0), (1.0, 0.0)]
    ranked = sampled_pairs.ranked_rows(samples)
    assert ranked[0] == {"prompt": "letter: a", "responses": ["aa", "ab", "bb"], "rewards": [1.0, 0.5, 0.0]}
    assert ranked[1]["responses"] == ["b", "b"]
    examples = preferences.tokenize_rankings(ranked, byte_tokenizer(), max_length=14, use_chat_template=False)
    np.testing.assert_array_equal(examples.arrays["rewards"], np.float32([[1.0, 0.5, 0.0], [0.2, 0.2, 0.0]]))
    np.testing.assert_array_equal(examples.arrays["valid"], [[1, 1, 1], [1, 1, 0]])
    # 'letter: a' is 9 bytes: the loss mask covers the response and its EOS (positions 9..11 for 'aa').
    np.testing.assert_array_equal(examples.arrays["loss_mask"][0, 0], [0] * 9 + [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(examples.arrays["tokens"][0, 0, 9:12], [97, 97, EOS])


def test_pairs_loss_and_target_masks():
    rows = [{"prompt": "ab", "chosen": "c", "rejected": "de", "target": "fgh"}]
    examples = preferences.tokenize_pairs(
        rows, byte_tokenizer(), max_length=6, use_chat_template=False, with_target=True
    )
    arrays = examples.arrays
    np.testing.assert_array_equal(arrays["chosen_loss_mask"], [[0, 0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(arrays["rejected_loss_mask"], [[0, 0, 1, 1, 1, 0]])
    np.testing.assert_array_equal(arrays["target_tokens"], [[97, 98, 102, 103, 104, EOS]])
    np.testing.assert_array_equal(arrays["target_loss_mask"], [[0, 0, 1, 1, 1, 1]])
    no_target = [{"prompt": "a", "chosen": "b", "rejected": "c"}]
    with pytest.raises(ValueError, match=r"row 0: missing or empty column 'target'"):
        preferences.tokenize_pairs(no_target, byte_tokenizer(), max_length=6, use_chat_template=False, with_target=True)


def test_ranked_rewards_default_and_errors():
    rows = [{"prompt": "a", "responses": ["b", "c", "d"]}]
    examples = preferences.tokenize_rankings(rows, byte_tokenizer(), max_length=4, use_chat_template=False)
    np.testing.assert_array_equal(examples.arrays["rewards"], [[0.0, -1.0, -2.0]])
    bad = [{"prompt": "a", "responses": ["b", "c"], "rewards": [1.0], "_source": "f.jsonl:3"}]
    with pytest.raises(ValueError, match=r"f.jsonl:3: column 'rewards' must be a list of 2 numbers"):
        preferences.tokenize_rankings(bad, byte_tokenizer(), max_length=4, use_chat_template=False)


def test_samples_file_round_trip_and_errors(tmp_path):
    path = str(tmp_path / "samples.jsonl")
    written = sampled_pairs.write_samples(path, ["p0", "p1"], ["a", "b", "c", "d"], np.array([0.1, 0.2, 0.3, 0.4]))
    assert written[1] == {"prompt": "p1", "responses": ["c", "d"], "rewards": [pytest.approx(0.3), pytest.approx(0.4)]}
    rows = sampled_pairs.read_samples(path, num_prompts=2, samples_per_prompt=2)
    assert [row["responses"] for row in rows] == [["a", "b"], ["c", "d"]]
    with pytest.raises(ValueError, match=r"samples.jsonl: 2 prompts, but this run samples 3"):
        sampled_pairs.read_samples(path, num_prompts=3, samples_per_prompt=2)
    with pytest.raises(ValueError, match=r"samples.jsonl:1: 2 responses, but this run samples 4 per prompt"):
        sampled_pairs.read_samples(path, num_prompts=2, samples_per_prompt=4)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "responses": ["a", "b"], "rewards": [0.1, "x"]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: column 'rewards' must be 2 finite numbers"):
        sampled_pairs.read_samples(str(bad), num_prompts=1, samples_per_prompt=2)
