"""The two sentiment tasks: SmolLM2 movie-review prompts and the tiny-model `reviews` task scored by VADER."""

import numpy as np
import pytest

from rlaif_jax.data.prompts import load_prompts as task_prompts
from rlaif_jax.data.sentiment import REVIEW_WORDS, review_prompts, review_rows, sentiment_prompts
from rlaif_jax.rewards.gold import SentimentJudge


def test_sentiment_prompt_splits_are_disjoint():
    train, held_out = sentiment_prompts("train"), sentiment_prompts("held_out")
    assert (len(train), len(held_out)) == (64, 32)
    assert not set(train) & set(held_out)
    with pytest.raises(ValueError, match="unknown split"):
        sentiment_prompts("test")


def test_review_rows_are_seeded_and_drawn_from_the_word_lists():
    rows = review_rows(300, seed=3)
    assert rows == review_rows(300, seed=3) and rows != review_rows(300, seed=4)
    words = [word for group in REVIEW_WORDS for word in group]
    first_words = []
    for row in rows:
        assert row["prompt"] in review_prompts("train")
        first, second = row["response"].removesuffix(".").split(", ")
        assert first.split()[0] in words and first.split()[1] == "plot"
        assert second.split()[0] in words and second.split()[1] == "cast"
        first_words.append(first.split()[0])
    # Uniform over 12 words: each group (positive / negative / neutral) takes about a third.
    shares = [np.mean([word in group for word in first_words]) for group in REVIEW_WORDS]
    np.testing.assert_allclose(shares, 1 / 3, atol=0.08)
    assert not set(review_prompts("train")) & set(task_prompts("reviews", "held_out", 0))


def test_vader_orders_the_review_words():
    judge = SentimentJudge()
    positive, negative, neutral = ([f"{group[0]} plot, {group[0]} cast."] for group in REVIEW_WORDS)
    scores = judge(["p"] * 3, positive + negative + neutral)
    assert scores[0] > 0.8 and scores[1] < -0.6 and scores[2] == 0.0


def test_task_prompts_cycle_a_short_split_to_the_asked_number():
    held_out = review_prompts("held_out")
    assert task_prompts("reviews", "held_out", 0) == held_out  # 0 = the split once
    cycled = task_prompts("reviews", "held_out", 0, num_prompts=2 * len(held_out) + 3)
    assert cycled == held_out * 2 + held_out[:3]
    assert task_prompts("toy", "held_out", 0, num_prompts=5) == task_prompts("toy", "held_out", 0)[:5]
