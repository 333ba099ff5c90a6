"""The vocabulary-chunked LM head (models/lm_head.py) against the full-logits log-softmax: values, entropy, argmax
flags and gradients, for tied ([vocab, hidden]) and untied ([hidden, vocab]) heads, chunk counts that divide the
vocabulary and one that pads it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.models import lm_head

VOCAB, HIDDEN = 259, 16  # 259 = 7 x 37: divisors 7 and 37, and no divisor between 3 and 6 (so chunk 100 pads)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.normal(size=(3, 5, HIDDEN)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(VOCAB, HIDDEN)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, VOCAB, (3, 5)), jnp.int32)
    targets = targets.at[0, 0].set(VOCAB - 1).at[0, 1].set(0)  # the last id (padding's neighbour) and the first
    argmax = jnp.argmax(jnp.einsum("bsd,vd->bsv", hidden, head), axis=-1)
    targets = targets.at[1].set(argmax[1])  # a row of argmax targets
    return hidden, head, targets


def _full(hidden, head, targets, temperature):
    logits = jnp.einsum("bsd,vd->bsv", hidden, head) / temperature
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    target = jnp.take_along_axis(logprobs, targets[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1)
    is_argmax = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0] >= jnp.max(logits, axis=-1)
    return target, entropy, is_argmax


def test_num_vocab_chunks_divides_the_vocabulary_when_it_can():
    assert lm_head.num_vocab_chunks(128256, 16384) == 8  # Llama 3: 8 chunks of 16032
    assert lm_head.num_vocab_chunks(49152, 16384) == 3  # SmolLM2
    assert lm_head.num_vocab_chunks(259, 0) == 1 and lm_head.num_vocab_chunks(259, 300) == 1
    assert lm_head.num_vocab_chunks(259, 40) == 7  # ideal 7 divides 259
    assert lm_head.num_vocab_chunks(259, 100) == 3  # ideal 3; no divisor in 3..6: padded to 261


@pytest.mark.parametrize("chunk_size", [0, 40, 100, 8])  # 1 chunk, 7 chunks, 3 padded chunks, 37 chunks
@pytest.mark.parametrize("tied", [True, False])
def test_chunked_stats_equal_the_full_softmax(chunk_size, tied, record_diff):
    hidden, head, targets = _inputs()
    weight = head if tied else head.T

    def chunked(hidden, weight):
        return lm_head.chunked_head_stats(
            hidden, weight, targets, vocab_axis=0 if tied else 1, chunk_size=chunk_size, temperature=0.7,
            with_entropy=True,
        )  # fmt: skip

    stats = jax.jit(chunked)(hidden, weight)
    target, entropy, is_argmax = _full(hidden, head, targets, 0.7)
    diff = record_diff("chunked head logprob max|Δ|", jnp.max(jnp.abs(stats["logprobs"] - target)), 1e-5)
    assert diff <= 1e-5
    np.testing.assert_allclose(stats["entropy"], entropy, atol=1e-5)
    np.testing.assert_array_equal(stats["is_argmax"], is_argmax)
    assert bool(jnp.any(is_argmax)) and not bool(jnp.all(is_argmax))

    def loss_chunked(hidden, weight):
        stats = chunked(hidden, weight)
        return jnp.sum(stats["logprobs"] * jnp.arange(15.0).reshape(3, 5)) + jnp.sum(stats["entropy"])

    def loss_full(hidden, weight):
        target, entropy, _ = _full(hidden, weight if tied else weight.T, targets, 0.7)
        return jnp.sum(target * jnp.arange(15.0).reshape(3, 5)) + jnp.sum(entropy)

    grads = jax.jit(jax.grad(loss_chunked, argnums=(0, 1)))(hidden, weight)
    expected = jax.grad(loss_full, argnums=(0, 1))(hidden, weight)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, atol=2e-5 * float(jnp.max(jnp.abs(want))))


def test_bf16_hidden_states_give_finite_float32_stats():
    hidden, head, targets = _inputs(1)
    stats = lm_head.chunked_head_stats(
        hidden.astype(jnp.bfloat16) * 50, head, targets, vocab_axis=0, chunk_size=40, with_entropy=True
    )
    assert stats["logprobs"].dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(stats["logprobs"])) and jnp.all(stats["entropy"] >= -1e-4))
    assert bool(jnp.all(stats["logprobs"] <= 0))


def test_no_full_vocabulary_logits_in_the_program():
    """The compiled SFT-style program over 8 chunks holds no [batch, seq, vocab] float32 array."""
    rng = np.random.default_rng(0)
    vocab = 8 * 64
    hidden = jnp.asarray(rng.normal(size=(2, 32, 16)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(vocab, 16)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, vocab, (2, 32)), jnp.int32)

    def loss(hidden, head):
        return -jnp.sum(lm_head.chunked_head_stats(hidden, head, targets, vocab_axis=0, chunk_size=64)["logprobs"])

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(hidden, head).compile().as_text()
    assert "f32[2,32,64]" in hlo  # one chunk's logits
    assert f"f32[2,32,{vocab}]" not in hlo
