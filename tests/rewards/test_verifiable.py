"""The verifiable arithmetic task (data/arithmetic.py) and the rule-based rewards and their weighted sums
(rewards/verifiable.py, rewards/by_name.py)."""

import numpy as np
import pytest

from rlaif_jax.data import arithmetic
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.gold import make_gold_reward


def reward(name):
    return make_reward_fn(name, max_length=64, use_chat_template=False)


def test_splits_are_disjoint_seeded_and_every_answer_is_recoverable():
    train = arithmetic.arithmetic_prompts("train", 300)
    held_out = arithmetic.arithmetic_prompts("held_out", 100)
    assert len(set(train)) == 300 and len(set(held_out)) == 100
    assert not set(train) & set(held_out)
    assert train == arithmetic.arithmetic_prompts("train", 300)  # deterministic
    assert arithmetic.arithmetic_prompts("train", 50, seed=1) != train[:50]
    assert (
        prompt_data.load_prompts("arithmetic", "held_out")[:100] == arithmetic.arithmetic_prompts("held_out", 512)[:100]
    )
    for prompt in train + held_out:
        assert prompt.endswith(arithmetic.INSTRUCTION)
        assert arithmetic.answer_of(prompt) >= 0
    kinds = {prompt.split()[1] for prompt in train}
    assert {"is", "has", "buys"} <= kinds  # bare arithmetic and word problems both occur


def test_answers_of_each_template_by_hand():
    assert arithmetic.answer_of(arithmetic.prompt_text("What is 17 + 25?")) == 42
    assert arithmetic.answer_of("What is 90 - 35?") == 55
    assert arithmetic.answer_of("What is 7 times 8?") == 56
    assert arithmetic.answer_of("Ann has 12 pens and gets 9 more. How many pens does Ann have now?") == 21
    assert arithmetic.answer_of("Ben has 40 coins and gives away 15. How many coins are left?") == 25
    assert arithmetic.answer_of("Cara buys 6 boxes with 4 books in each. How many books is that?") == 24
    with pytest.raises(ValueError, match="not an arithmetic-task prompt: 'Tell me a story'"):
        arithmetic.answer_of("Tell me a story")


@pytest.mark.parametrize(
    "completion, number",
    [
        ("17 + 25 = 42. Answer: 42", 42.0),
        ("First 3, then 4. So 7", 7.0),  # no tag: the last number
        ("Answer: 1,024.", 1024.0),
        ("answer: -3 and later 5", -3.0),  # the tagged number wins over a later one
        ("I do not know", None),
        ("", None),
    ],
)
def test_final_number(completion, number):
    assert arithmetic.final_number(completion) == number


def test_arithmetic_reward_scores_and_counts_unparsable_answers_and_prompts():
    fn = make_gold_reward("arithmetic")
    prompts = ["What is 2 + 3?"] * 3 + ["Write a poem"]
    rewards = fn(prompts, ["Answer: 5", "It is 6", "no idea", "Answer: 5"])
    np.testing.assert_array_equal(rewards, [1.0, 0.0, 0.0, 0.0])
    assert fn.last_metrics == {"unparsed_answers": 1.0, "unparsed_prompts": 1.0}


def test_weighted_sum_of_rules_by_hand():
    fn = reward("arithmetic + 0.1*format + 0.5*length:4")
    prompts = ["What is 2 + 3?"] * 3
    completions = ["Answer: 5", "5 is it, I think, Answer: 6", "five"]
    # arithmetic 1, 0, 0; format 1, 1, 0; length: 1, 7 and 1 words -> 0, -(7-4)/4, 0
    np.testing.assert_allclose(fn(prompts, completions), [1.1, 0.1 - 0.5 * 0.75, 0.0], rtol=1e-6)
    assert fn.last_metrics["reward/arithmetic"] == pytest.approx(1 / 3)
    assert fn.last_metrics["reward/format"] == pytest.approx(2 / 3)
    assert fn.last_metrics["unparsed_answers"] == 1.0
    np.testing.assert_allclose(reward("-1*format")(["x"], ["Answer: 2"]), [-1.0])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("arithmetic + 0.1*formt", r"unknown reward 'formt'"),
        ("gold", r"reward 'gold': unknown reward 'gold'"),
        ("arithmetic + ", r"empty term in the sum"),
        ("length:many", r"'length:MAX_WORDS' needs an integer, got 'length:many'"),
        ("arithmetic + 0.5*length:0", r"length penalty: max_words must be >= 1, got 0"),
    ],
)
def test_bad_reward_specs_name_the_term(spec, message):
    with pytest.raises(ValueError, match=message):
        reward(spec)
