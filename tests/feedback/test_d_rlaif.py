"""d-RLAIF: the expected score and reward by hand, on a model whose score distribution we plant, and as RL reward."""

import math

import numpy as np
import pytest

from rlaif_jax import config_defaults, models, pipelines
from rlaif_jax.data.toy import toy_graded_rows, toy_reward
from rlaif_jax.feedback import templates
from rlaif_jax.feedback.d_rlaif import (
    DRlaifReward,
    d_rlaif_scores,
    expected_score,
    load_d_rlaif_reward,
    parse_spec,
    score_demonstrations,
    score_label,
    score_to_reward,
)
from rlaif_jax.models.byte_tokenizer import byte_tokenizer
from rlaif_jax.pipelines.sft import load_sft_examples
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.workdir import read_metrics


def test_expected_score_and_reward_by_hand():
    probs = np.zeros((4, 10))
    probs[0, 6] = 1.0  # all mass on "7"
    probs[1] = 0.1  # uniform
    probs[2, [2, 8]] = 0.5  # "3" and "9"
    probs[3, [0, 9]] = 0.5  # "1" and "10"
    np.testing.assert_allclose(expected_score(probs), [7.0, 5.5, 6.0, 5.5])
    np.testing.assert_allclose(score_to_reward(expected_score(probs)), [1 / 3, 0.0, 1 / 9, 0.0])
    np.testing.assert_allclose(score_to_reward(np.array([1.0, 10.0])), [-1.0, 1.0])
    with pytest.raises(ValueError, match=r"\[n, 10\]"):
        expected_score(np.ones((2, 9)))


def test_judge_demonstrations_answer_the_score_prompt_with_the_gold_grade():
    assert [score_label(g) for g in (0.0, 1 / 6, 2 / 6, 0.5, 4 / 6, 5 / 6, 1.0)] == ["1", "3", "4", "6", "7", "9", "10"]
    with pytest.raises(ValueError, match="outside"):
        score_label(1.5)
    rows = toy_graded_rows(700, seed=0)
    assert all(row["gold"] == toy_reward(row["prompt"], row["response"]) for row in rows)
    assert {len(row["response"]) for row in rows} == set(range(1, 9))
    matches = [sum(letter == row["prompt"][-1] for letter in row["response"]) for row in rows]
    assert set(matches) == set(range(9))
    assert np.mean([row["gold"] == 1.0 for row in rows]) > 0.03  # all-matching answers of 6-8 letters: ~4.7%
    demos = score_demonstrations("toy", rows[:3])
    template = templates.score_template("toy")
    for row, demo in zip(rows[:3], demos):
        assert demo == {
            "prompt": templates.score_prompt(template, row["prompt"], row["response"]),
            "response": score_label(row["gold"]),
        }
    with pytest.raises(ValueError, match=r"row 1 has no \['gold'\]"):
        score_demonstrations("toy", [rows[0], {"prompt": "letter: a", "response": "aaa"}])
    with pytest.raises(ValueError, match=r"row 2: gold reward 1.5 is outside \[0, 1\]"):
        score_demonstrations("toy", [*rows[:2], {"prompt": "letter: a", "response": "aaa", "gold": 1.5}])


def test_the_tiny_judge_stage_fits_every_score_prompt_in_its_max_length():
    """The judge's SFT rows must keep their whole prompt and answer (a too-short max_length dropped every
    6-letter row once, silently training the judge on the short ones)."""
    judge = config_defaults.load_config_file("d_rlaif", "tiny").stages.judge
    judge.data.toy_num_rows = 64
    examples = load_sft_examples(judge.data, byte_tokenizer())
    assert (examples.num_truncated, examples.num_dropped, len(examples)) == (0, 0, 64)
    answers = examples.arrays["tokens"][examples.arrays["loss_mask"]]
    assert set(answers.tolist()) <= set(byte_tokenizer()("12345678910")["input_ids"]) | {byte_tokenizer().eos_token_id}


def planted_scorer() -> models.LanguageModel:
    """A byte-tokenizer model whose blocks add nothing, so the logits depend only on the last token: after ' ' it
    says "1" w.p. 0.2, "5" 0.3, "9" 0.5; after "1" it says "0" w.p. 0.5 (and "x" 0.5). Every other token: e^-40."""
    config = models.ModelConfig(
        vocab_size=259, hidden_size=32, tie_word_embeddings=False, scan_layers=False, max_position_embeddings=2048
    )
    lm = models.init_random(config, tokenizer=byte_tokenizer())
    params = {key: value for key, value in lm.params.items()}
    for i in range(config.num_layers):
        layer = params[f"layers_{i}"]
        layer["attention"]["o_proj"] = np.zeros_like(layer["attention"]["o_proj"])
        layer["mlp"]["down_proj"] = np.zeros_like(layer["mlp"]["down_proj"])
    embedding = np.zeros((259, 32), np.float32)
    embedding[ord(" "), 0] = 1.0  # RMSNorm turns e_k into e_k / sqrt(1/32 + eps)
    embedding[ord("1"), 1] = 1.0
    norm_gain = 1.0 / math.sqrt(1.0 / 32 + config.rms_norm_eps)
    lm_head = np.full((32, 259), -40.0 / norm_gain, np.float32)
    for row, planted in ((0, {"1": 0.2, "5": 0.3, "9": 0.5}), (1, {"0": 0.5, "x": 0.5})):
        for char, probability in planted.items():
            lm_head[row, ord(char)] = math.log(probability) / norm_gain
    params.update(embedding=embedding, lm_head=lm_head)
    return lm.replace(params=params)


def test_planted_distribution_gives_the_hand_computed_score(record_diff):
    scores = d_rlaif_scores(planted_scorer(), ["SUBREDDIT: r/x\nPOST: p\nTL;DR:"], ["a summary"])
    # "10" = 0.2 * 0.5 = 0.1 is the half of "1"'s mass that goes on to "0": the answer "1" keeps 0.2 - 0.1.
    expected_probs = np.array([0.1, 0, 0, 0, 0.3, 0, 0, 0, 0.5, 0.1])
    np.testing.assert_allclose(scores.probs[0], expected_probs, atol=1e-5)
    expected = 1 * 0.1 + 5 * 0.3 + 9 * 0.5 + 10 * 0.1  # 7.1
    error = record_diff("|s - 7.1| planted", abs(scores.expected_score[0] - expected), 1e-4)
    assert error <= 1e-4
    np.testing.assert_allclose(scores.reward, [(expected - 5.5) / 4.5], atol=1e-4)  # 0.3555...


def test_reward_fn_interface(byte_lm):
    lm, _ = byte_lm
    reward_fn = DRlaifReward(lm, template="helpful")
    prompts, completions = ["Human: hi\n\nAssistant:"] * 2 + ["Q?"], ["Hello!", "Go away.", "A."]
    rewards = reward_fn(prompts, completions)
    assert rewards.shape == (3,) and rewards.dtype == np.float32
    assert np.all(np.abs(rewards) <= 1.0)
    direct = d_rlaif_scores(lm, prompts, completions, template=templates.score_template("helpful"))
    np.testing.assert_allclose(rewards, (direct.probs @ np.arange(1, 11) - 5.5) / 4.5, atol=1e-6)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("smollm2-135m-instruct", ("summarize", "smollm2-135m-instruct")),
        ("sentiment:tiny", ("sentiment", "tiny")),
        ("helpful:/models/a:b", ("helpful", "/models/a:b")),
        ("/models/a:b", ("summarize", "/models/a:b")),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


def test_make_reward_fn_builds_the_d_rlaif_reward():
    reward_fn = make_reward_fn("d_rlaif:sentiment:tiny", max_length=64, use_chat_template=False)
    assert isinstance(reward_fn, DRlaifReward) and reward_fn.template.name == "sentiment"
    rewards = reward_fn(["review: a film"], ["great"])
    assert rewards.shape == (1,) and -1.0 <= rewards[0] <= 1.0
    with pytest.raises(ValueError, match="names no labeler model"):
        load_d_rlaif_reward("summarize:")


@pytest.mark.slow
def test_d_rlaif_tiny_chain_raises_gold_reward_on_the_judges_scores(tmp_path, record_diff):
    """configs/d_rlaif.py:tiny end to end: SFT, a judge taught the toy score prompt, REINFORCE whose rewards are
    the judge's d-RLAIF scores in [-1, 1] (no reward model, no gold reward in training), then the gold judge's
    win rate against SFT. The held-out gold reward must rise."""
    config = config_defaults.load_config_file("d_rlaif", "tiny")
    assert config.stages.rl.rl.reward == "d_rlaif:toy:@judge/hf_model" and config.stages.rl.rl.algorithm == "reinforce"
    results = pipelines.run(config, str(tmp_path))
    rewards = [row["reward_mean"] for row in read_metrics(str(tmp_path / "rl"))]
    assert len(rewards) == config.stages.rl.train.num_steps and all(-1.0 <= r <= 1.0 for r in rewards)
    rl = results["rl"]
    assert rl["end"]["judge"] == "toy"  # held out: the gold toy reward, not the labeler
    gain = record_diff("d-RLAIF tiny gold gain", rl["end"]["gold_reward"] - rl["start"]["gold_reward"], 0.05, ">")
    assert gain > 0.05, (
        rl
    )  # measured 0.211 on this 8-device mesh, 0.115 on one device: a weak judge (configs/d_rlaif.py)
    win_rate = record_diff("d-RLAIF tiny win rate vs SFT (gold)", results["win_rate_gold"]["win_rate"], 0.5, ">")
    assert win_rate > 0.5
    report = (tmp_path / "report.md").read_text()
    assert "d-RLAIF vs SFT (gold:toy judge): win rate" in report and "| judge | sft |" in report
    assert (tmp_path / "judge" / "hf_model" / "config.json").exists()
