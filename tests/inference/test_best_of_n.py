"""Best-of-N: the argmax on planted rewards, the analytic KL against an exact computation, and the `best_of_n` job
raising the toy gold reward over its SFT start."""

import json
import math

import jax
import numpy as np
import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.data.toy import toy_reward
from rlaif_jax.inference.best_of_n import best_of_n, best_of_n_kl, select_best, sft_rows
from rlaif_jax.models.setup import build_model

PLANTED = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.5, 0.1, 0.0], [-1.0, -2.0, -0.5, -3.0]], np.float32)


def test_select_best_picks_the_argmax_and_the_first_of_ties():
    np.testing.assert_array_equal(select_best(PLANTED), [1, 0, 2])
    np.testing.assert_array_equal(select_best(PLANTED[:, :2]), [1, 0, 0])
    np.testing.assert_array_equal(select_best(PLANTED[:, :1]), [0, 0, 0])


def test_select_best_names_bad_input():
    rewards = PLANTED.copy()
    rewards[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"prompt row 1 has a non-finite reward"):
        select_best(rewards)
    with pytest.raises(ValueError, match=r"\[prompts, n\].*shape \(4,\)"):
        select_best(PLANTED[0])


def test_best_of_n_kl_matches_hand_values_and_the_exact_kl():
    # log n - (n - 1) / n by hand: n = 2 -> ln 2 - 1/2; n = 4 -> ln 4 - 3/4; n = 16 -> ln 16 - 15/16.
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(0.693147180560 - 0.5, abs=1e-12)
    assert best_of_n_kl(4) == pytest.approx(1.386294361120 - 0.75, abs=1e-12)
    assert best_of_n_kl(16) == pytest.approx(2.772588722240 - 0.9375, abs=1e-12)
    # Exact KL when the base policy puts 1/M on each of M outcomes with distinct rewards: best-of-n picks outcome i
    # (i-th smallest reward) with p_i = (i/M)^n - ((i-1)/M)^n, KL = sum p_i log(M p_i) -> the formula as M grows.
    m = 100_000
    quantiles = np.arange(1, m + 1) / m
    for n in (2, 4, 16):
        p = quantiles**n - (quantiles - 1 / m) ** n
        exact = float(np.sum(p[p > 0] * np.log(m * p[p > 0])))
        assert exact == pytest.approx(best_of_n_kl(n), abs=1e-6)
    # With ties the formula is an upper bound: rewards {0, 1} at 1/2 each, best-of-2 picks 1 w.p. 3/4:
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812 < 0.193147.
    tied = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert tied == pytest.approx(0.130812, abs=1e-6)
    assert tied < best_of_n_kl(2)
    with pytest.raises(ValueError, match="n >= 1"):
        best_of_n_kl(0)


@pytest.fixture(scope="module")
def tiny_policy():
    """A random-init 2-layer byte-level model: 259 ids, so completions decode to text."""
    return build_model(config_defaults.model("tiny"), None, None)


def encode(policy, texts):
    return [list(policy.tokenizer(text)["input_ids"]) for text in texts]


def test_best_of_n_keeps_the_planted_argmax(tiny_policy):
    prompts = ["letter: a", "letter: b", "letter: c"]
    calls = []

    def planted_reward(texts, completions):
        calls.append(list(texts))
        return PLANTED.reshape(-1)

    result = best_of_n(
        tiny_policy,
        prompts,
        encode(tiny_policy, prompts),
        planted_reward,
        n=4,
        rng=jax.random.key(0),
        max_new_tokens=6,
        temperature=1.0,
        prompt_length=12,
    )
    assert calls == [[prompt for prompt in prompts for _ in range(4)]]  # prompt-major, n per prompt
    np.testing.assert_array_equal(result.best_index, [1, 0, 2])
    np.testing.assert_array_equal(result.rewards, np.float32([0.9, 0.5, -0.5]))
    np.testing.assert_array_equal(result.all_rewards, PLANTED)
    assert result.completions == [result.rollout.completions[row] for row in (1, 4, 10)]
    assert result.prompts == prompts
    assert result.all_completions()[2] == result.rollout.completions[8:12]
    assert sft_rows(result)[0] == {
        "prompt": "letter: a",
        "response": result.completions[0],
        "reward": float(np.float32(0.9)),
    }
    # Best-of-2 from the same draw: the first two samples of each prompt.
    first_two = result.first(2)
    np.testing.assert_array_equal(first_two.best_index, [1, 0, 0])
    np.testing.assert_array_equal(first_two.rewards, np.float32([0.9, 0.5, -1.0]))
    assert first_two.completions == [result.rollout.completions[row] for row in (1, 4, 8)]
    assert first_two.rollout.tokens.shape == (6, 12 + 6)
    with pytest.raises(ValueError, match="1 <= m <= n=4"):
        result.first(5)


def test_best_of_n_in_chunks_picks_the_best_of_each_prompt(tiny_policy):
    prompts = ["letter: a", "letter: b", "letter: c", "letter: d"]  # 2 calls of 2 x 6 rows: the shapes above
    distinct_letters = lambda texts, completions: np.array([len(set(c)) for c in completions], np.float32)  # noqa
    result = best_of_n(
        tiny_policy,
        prompts,
        encode(tiny_policy, prompts),
        distinct_letters,
        n=6,
        rng=jax.random.key(1),
        max_new_tokens=6,
        temperature=1.0,
        prompt_length=12,
        prompts_per_call=2,
    )
    assert result.all_rewards.shape == (4, 6) and len(result.rollout.completions) == 24
    recomputed = np.array([[len(set(c)) for c in row] for row in result.all_completions()])
    np.testing.assert_array_equal(result.all_rewards, recomputed)
    np.testing.assert_array_equal(result.rewards, recomputed.max(axis=1))
    assert [len(set(c)) for c in result.completions] == recomputed.max(axis=1).tolist()


@pytest.mark.slow
def test_best_of_n_job_raises_toy_gold_over_the_sft_start(sft_model, tmp_path, record_diff):
    config = config_defaults.load_config_file("best_of_n", "tiny")
    config.model.name = sft_model
    config.sft_first = False
    config.best_of_n.ns = (16, 1, 4)  # order and duplicates do not matter
    config.best_of_n.data_split = "train"
    config.best_of_n.data_prompts = 32
    results = pipelines.run(config, str(tmp_path))
    rows = {row["n"]: row for row in results["rows"]}
    assert sorted(rows) == [1, 4, 16]
    for n, row in rows.items():
        assert row["gold_reward"] == row["reward"]  # the toy reward is its own gold judge
        assert row["kl_bound"] == best_of_n_kl(n)
    # Nested draws: the picked reward cannot fall as n grows.
    assert rows[1]["reward"] <= rows[4]["reward"] <= rows[16]["reward"]
    gain = record_diff("best-of-16 gold - best-of-1 gold", rows[16]["gold_reward"] - rows[1]["gold_reward"], 0.2, ">")
    assert gain > 0.2, rows  # measured 0.52 -> 0.86
    assert rows[16]["kl_bound"] < 1.84
    saved = json.loads((tmp_path / "best_of_n.json").read_text())
    assert saved["rows"] == results["rows"]
    assert (tmp_path / "best_of_n.md").read_text().count("\n| ") == 1 + 3  # header + one line per n
    data = [json.loads(line) for line in open(results["data_file"])]
    assert 0 < len(data) <= 32
    for row in data:
        assert row["reward"] == pytest.approx(toy_reward(row["prompt"], row["response"]))
    assert np.mean([row["reward"] for row in data]) > rows[1]["gold_reward"]  # best-of-4 data beats one sample


def test_config_sizes():
    assert config_defaults.load_config_file("best_of_n", "paper").best_of_n.ns[-1] == 128  # DPO §6.2: Best of 128
    smollm2 = config_defaults.load_config_file("best_of_n", "smollm2")
    assert (smollm2.best_of_n.gold_reward, smollm2.sft_first) == ("sentiment", False)
    with pytest.raises(ValueError, match="unknown argument 'huge'"):
        config_defaults.load_config_file("best_of_n", "huge")
