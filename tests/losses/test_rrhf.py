"""RRHF (Yuan et al. 2023) against hand-computed values and a transcription of the official loss code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.logprobs import sequence_logprobs
from rlaif_jax.losses.rrhf import best_response_index, rrhf_loss, rrhf_loss_fn
from rlaif_jax.losses.sft import sft_token_nll

PROMPT = 3


def test_ranking_loss_by_hand():
    scores = jnp.array([[-1.0, -2.0, -0.5]])
    rewards = jnp.array([[1.0, 3.0, 2.0]])
    valid = jnp.ones((1, 3), bool)
    # pairs r_i < r_j: (0,1) max(0, -1 + 2) = 1; (0,2) max(0, -1 + 0.5) = 0; (2,1) max(0, -0.5 + 2) = 1.5
    loss = rrhf_loss(scores, rewards, valid, jnp.array([0.7]), sft_weight=2.0)
    np.testing.assert_allclose(np.asarray(loss), [2.5 + 2.0 * 0.7], rtol=1e-6)
    weighted = rrhf_loss(scores, rewards, valid, jnp.array([0.7]), rank_weight=0.5)
    np.testing.assert_allclose(np.asarray(weighted), [1.25 + 0.7], rtol=1e-6)
    assert int(best_response_index(rewards, valid)[0]) == 1


def test_ties_and_padding_are_not_pairs():
    scores = jnp.array([[-1.0, -2.0, -0.5, 5.0]])
    rewards = jnp.array([[3.0, 3.0, 2.0, 9.0]])  # 0 and 1 tie; 3 is padding with the highest reward
    valid = jnp.array([[True, True, True, False]])
    # (2,0): max(0, -0.5 + 1) = 0.5; (2,1): max(0, -0.5 + 2) = 1.5; the tie (0,1) and padding add nothing
    loss = rrhf_loss(scores, rewards, valid, jnp.zeros(1))
    np.testing.assert_allclose(np.asarray(loss), [2.0], rtol=1e-6)
    assert int(best_response_index(rewards, valid)[0]) == 0  # padding never best; the first of a tie wins


def official_rank_loss(scores: np.ndarray, rw_scores: np.ndarray) -> float:
    """`RRHFTrainer.rrhf_loss` of GanjinZero/RRHF train.py for one prompt, transcribed to numpy."""
    diff = scores[None, :] - scores[:, None]
    rw_diff = rw_scores[None, :] - rw_scores[:, None]
    aval = (rw_diff > 0) & (diff < 0)
    return float(-diff[aval].sum())


def test_ranking_loss_equals_official_code_on_random_lists():
    rng = np.random.default_rng(0)
    scores = rng.normal(-2.0, 1.0, (16, 6)).astype(np.float32)
    rewards = rng.integers(0, 4, (16, 6)).astype(np.float32)  # many ties
    ours = rrhf_loss(jnp.asarray(scores), jnp.asarray(rewards), jnp.ones((16, 6), bool), jnp.zeros(16))
    expected = [official_rank_loss(scores[i], rewards[i]) for i in range(16)]
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5, atol=1e-6)
    assert min(expected) >= 0.0 and max(expected) > 1.0


def test_bfloat16_extremes_stay_finite():
    scores = jnp.array([[1e4, -1e4, 0.0]], jnp.bfloat16)
    loss = rrhf_loss(scores, jnp.array([[0.0, 1.0, 2.0]], jnp.bfloat16), jnp.ones((1, 3), bool), jnp.array([1e4]))
    assert loss.dtype == jnp.float32 and np.isfinite(np.asarray(loss)).all()
    np.testing.assert_allclose(np.asarray(loss), [2e4 + 1e4 + 1e4], rtol=1e-2)


def ranked_batch(seed: int, num_prompts: int = 2, num_responses: int = 3, seq: int = 9) -> dict:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 128, (num_prompts, num_responses, seq)).astype(np.int32)
    lengths = rng.integers(PROMPT + 2, seq + 1, (num_prompts, num_responses))
    positions = np.arange(seq)
    attention = positions < lengths[..., None]
    return dict(
        tokens=np.where(attention, tokens, 0),
        attention_mask=attention,
        loss_mask=attention & (positions >= PROMPT),
        rewards=np.array([[0.2, 0.9, 0.5], [1.0, 0.3, 7.0]], np.float32),
        valid=np.array([[True, True, True], [True, True, False]]),
    )


@pytest.fixture(scope="module")
def lm(make_tiny_lm):
    return make_tiny_lm(seed=5)


def test_adapter_is_rrhf_loss_on_sequence_logprobs(lm):
    batch = ranked_batch(0)
    flat = {key: batch[key].reshape(6, -1) for key in ("tokens", "attention_mask", "loss_mask")}
    logps, counts = jax.jit(sequence_logprobs, static_argnums=0)(
        lm.module, lm.params, flat["tokens"], flat["attention_mask"], flat["loss_mask"]
    )
    scores = (logps / counts).reshape(2, 3)
    # SFT term: mean token NLL of the best valid response (prompt 0: response 1; prompt 1: response 0, since 2 is
    # padding), computed independently with the SFT loss
    logits = jax.jit(lambda p, t, m: lm.module.apply({"params": p}, t, attention_mask=m))(
        lm.params, flat["tokens"], flat["attention_mask"]
    )
    nll, mask = sft_token_nll(logits, jnp.asarray(flat["tokens"]), jnp.asarray(flat["loss_mask"]))
    mean_nll = np.asarray(jnp.sum(nll, -1) / jnp.sum(mask, -1))
    best_nll = jnp.asarray([mean_nll[0 * 3 + 1], mean_nll[1 * 3 + 0]])
    expected = rrhf_loss(scores, jnp.asarray(batch["rewards"]), jnp.asarray(batch["valid"]), best_nll, sft_weight=0.5)
    loss_fn = rrhf_loss_fn(lm.module, sft_weight=0.5)
    (loss_sum, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(lm.params, batch, None, None)
    np.testing.assert_allclose(float(loss_sum), float(jnp.sum(expected)), rtol=1e-5)
    assert float(metrics["loss"][1]) == 2.0  # prompts
    np.testing.assert_allclose(float(metrics["sft_nll"][0]), float(jnp.sum(best_nll)), rtol=1e-5)
    assert float(metrics["pair_accuracy"][1]) == 3.0 + 1.0  # pairs with r_i < r_j among valid responses
    np.testing.assert_allclose(float(metrics["score"][1]), 5.0)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0.0


def test_prompt_without_valid_response_counts_nothing(lm):
    batch = ranked_batch(1)
    batch["valid"] = np.array([[False, False, False], [True, False, False]])
    loss_sum, metrics = jax.jit(rrhf_loss_fn(lm.module))(lm.params, batch, None, None)
    assert float(metrics["loss"][1]) == 1.0
    np.testing.assert_allclose(float(loss_sum), float(metrics["sft_nll"][0]), rtol=1e-6)  # one response: SFT only
    assert float(metrics["pair_accuracy"][1]) == 0.0
