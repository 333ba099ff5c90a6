"""Reward-model adapters against rewards read by hand; the last-token read is unchanged by batch size and pad side."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlaif_jax.losses.reward_model import (
    bradley_terry_loss,
    pairwise_reward_loss_fn,
    ranking_reward_loss_fn,
    sequence_rewards,
    soft_label_loss,
)
from rlaif_jax.train.step import init_train_state, make_train_step

PAD = 0
SEQ = 8


@pytest.fixture(scope="module")
def reward_lm():
    """A tiny model whose scalar head is random with O(1) rewards (a fresh head outputs 0 everywhere)."""
    from rlaif_jax import models

    lm = models.init_random(
        models.ModelConfig(vocab_size=128, max_position_embeddings=64, pad_token_id=PAD, scalar_head=True), seed=0
    )
    hidden = lm.config.hidden_size
    head = {"kernel": jax.random.normal(jax.random.key(1), (hidden,)) / hidden**0.5, "bias": jnp.float32(0.3)}
    return lm.replace(params={**lm.params, "scalar_head": head})


def sequences(seed: int, count: int) -> list[list[int]]:
    """`count` token lists of lengths 2..SEQ."""
    rng = np.random.default_rng(seed)
    return [list(rng.integers(3, 128, size=rng.integers(2, SEQ + 1))) for _ in range(count)]


def pad(rows: list[list[int]], side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    tokens = np.full((len(rows), SEQ), PAD, np.int32)
    mask = np.zeros((len(rows), SEQ), bool)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(SEQ - len(row), SEQ)
        tokens[i, span], mask[i, span] = row, True
    return tokens, mask


@pytest.fixture(scope="module")
def scalar_scores(reward_lm):
    """Jitted scalar head at every position of a padded batch: float32 [batch, seq]."""
    module = reward_lm.module
    return jax.jit(
        lambda tokens, mask: module.apply(
            {"params": reward_lm.params}, tokens, attention_mask=mask, method=module.scalar
        )
    )


def manual_rewards(scalar_scores, rows: list[list[int]]) -> np.ndarray:
    """The head's score at position len - 1 of each right-padded row, indexed by hand."""
    scores = np.asarray(scalar_scores(*pad(rows)))
    return np.array([scores[i, len(row) - 1] for i, row in enumerate(rows)])


def pair_batch(chosen, rejected, **extra):
    chosen_tokens, chosen_mask = pad(chosen)
    rejected_tokens, rejected_mask = pad(rejected)
    return dict(
        chosen_tokens=chosen_tokens,
        chosen_attention_mask=chosen_mask,
        rejected_tokens=rejected_tokens,
        rejected_attention_mask=rejected_mask,
        **extra,
    )


def test_pairwise_adapter_is_bradley_terry_on_last_token_rewards(reward_lm, scalar_scores):
    chosen, rejected = sequences(0, 3), sequences(1, 3)
    margin = np.array([0.0, 0.5, -1.0], np.float32)
    batch = pair_batch(chosen, rejected, margin=margin, preference=np.array([0.7, 1.0, 0.2], np.float32))
    both = manual_rewards(scalar_scores, chosen + rejected)
    r_chosen, r_rejected = both[:3], both[3:]
    assert np.std(np.concatenate([r_chosen, r_rejected])) > 0.1  # the head separates sequences

    loss_sum, metrics = jax.jit(pairwise_reward_loss_fn(reward_lm.module, loss_type="bradley_terry"))(
        reward_lm.params, batch, None, None
    )
    expected = bradley_terry_loss(jnp.asarray(r_chosen), jnp.asarray(r_rejected), margin=jnp.asarray(margin))
    np.testing.assert_allclose(float(loss_sum), float(jnp.sum(expected)), rtol=1e-5)
    assert float(metrics["loss"][1]) == 3.0
    np.testing.assert_allclose(float(metrics["accuracy"][0]), np.sum(r_chosen > r_rejected), atol=1e-6)
    np.testing.assert_allclose(float(metrics["reward_chosen"][0]), r_chosen.sum(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(metrics["reward_rejected"][0]), r_rejected.sum(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(metrics["reward_margin"][0]), (r_chosen - r_rejected).sum(), rtol=1e-5, atol=1e-5)

    soft_sum, _ = jax.jit(pairwise_reward_loss_fn(reward_lm.module, loss_type="soft_label"))(
        reward_lm.params, batch, None, None
    )
    expected = soft_label_loss(jnp.asarray(r_chosen), jnp.asarray(r_rejected), jnp.asarray(batch["preference"]))
    np.testing.assert_allclose(float(soft_sum), float(jnp.sum(expected)), rtol=1e-5)
    with pytest.raises(ValueError, match="loss_type='hinge'"):
        pairwise_reward_loss_fn(reward_lm.module, loss_type="hinge")


def test_ranking_adapter_equals_explicit_pairs(reward_lm, scalar_scores):
    responses = [sequences(2, 3), sequences(3, 2)]  # K = 3, and K = 2 padded to 3
    tokens = np.full((2, 3, SEQ), PAD, np.int32)
    mask = np.zeros((2, 3, SEQ), bool)
    valid = np.array([[1, 1, 1], [1, 1, 0]], bool)
    for prompt, rows in enumerate(responses):
        tokens[prompt, : len(rows)], mask[prompt, : len(rows)] = pad(rows)
    loss_sum, metrics = jax.jit(ranking_reward_loss_fn(reward_lm.module))(
        reward_lm.params, dict(tokens=tokens, attention_mask=mask, valid=valid), None, None
    )
    expected_sum, correct, num_pairs = 0.0, 0, 0
    all_rewards = manual_rewards(scalar_scores, responses[0] + responses[1])
    for rows, rewards in zip(responses, (all_rewards[:3], all_rewards[3:])):
        pairs = list(itertools.combinations(range(len(rows)), 2))  # (better, worse)
        better, worse = (jnp.asarray([rewards[p[k]] for p in pairs]) for k in (0, 1))
        expected_sum += float(jnp.mean(bradley_terry_loss(better, worse)))  # 1/C(K,2) Σ pairs
        correct += int(np.sum(np.asarray(better) > np.asarray(worse)))
        num_pairs += len(pairs)
    np.testing.assert_allclose(float(loss_sum), expected_sum, rtol=1e-5)
    assert float(metrics["loss"][1]) == 2.0
    assert (float(metrics["accuracy"][0]), float(metrics["accuracy"][1])) == (correct, num_pairs) == (correct, 4)
    assert float(metrics["reward"][1]) == 5.0


def test_reward_read_is_identical_across_batch_sizes_and_pad_side(reward_lm, record_diff):
    """RELIABILITY 19 (transformers#35911): the score comes from the last real token whatever surrounds it."""
    rows = sequences(4, 8)
    rewards = jax.jit(lambda params, tokens, mask: sequence_rewards(reward_lm.module, params, tokens, mask))
    reference = None
    worst = 0.0
    for side in ("right", "left"):
        tokens, mask = pad(rows, side)
        for batch_size in (8, 3, 1):
            chunks = []
            for start in range(0, len(rows), batch_size):
                index = np.minimum(np.arange(start, start + batch_size), len(rows) - 1)  # last chunk: repeat a row
                chunks.append(np.asarray(rewards(reward_lm.params, tokens[index], mask[index])))
            got = np.concatenate(chunks)[: len(rows)]
            if reference is None:
                reference = got
            # float32 rounding grows with |reward| (O(1) here): compare relative to max(1, |reward|)
            worst = max(worst, float(np.max(np.abs(got - reference) / np.maximum(1.0, np.abs(reference)))))
    assert np.std(reference) > 0.1
    assert record_diff("max |reward diff| / max(1, |reward|), pad side, batch 1/3/8", worst, 1e-6) <= 1e-6


def test_degenerate_ranking_batch_leaves_params_unchanged(reward_lm):
    """RELIABILITY 21: no prompt with two valid responses -> loss 0, count 0, no NaN, no update."""
    tokens, mask = pad(sequences(5, 4))
    batch = dict(
        tokens=tokens.reshape(2, 2, SEQ),
        attention_mask=mask.reshape(2, 2, SEQ),
        valid=np.array([[1, 0], [0, 0]], bool),
    )
    optimizer = optax.adam(1e-2)
    train_step = make_train_step(ranking_reward_loss_fn(reward_lm.module), optimizer, donate_state=False)
    state = init_train_state(reward_lm.params, optimizer)
    new_state, metrics = train_step(state, batch, jax.random.key(0))
    assert (float(metrics["loss"]), float(metrics["loss_count"]), float(metrics["applied"])) == (0.0, 0.0, 0.0)
    assert all(np.isfinite(float(value)) for value in metrics.values())
    jax.tree.map(np.testing.assert_array_equal, new_state["params"], state["params"])
