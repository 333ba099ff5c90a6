"""SFT loss against a hand computation; masking that padding cannot leak into."""

import jax.numpy as jnp
import numpy as np

from rlaif_jax.losses.logprobs import masked_mean, masked_sum, token_logprobs
from rlaif_jax.losses.sft import sft_token_nll


def test_sft_nll_matches_hand_computation():
    # vocab 3, one sequence of 3 tokens; position t scores token t + 1.
    logits = jnp.array([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [5.0, 0.0, 0.0]]])
    tokens = jnp.array([[0, 2, 1]])
    loss_mask = jnp.array([[0, 1, 1]])
    nll, mask = sft_token_nll(logits, tokens, loss_mask)
    expected_first = -(2.0 - np.log(np.exp(0.0) + np.exp(1.0) + np.exp(2.0)))  # token 2 after logits [0, 1, 2]
    expected_second = np.log(3.0)  # uniform over 3
    np.testing.assert_allclose(np.asarray(nll), [[expected_first, expected_second]], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(mask), [[True, True]])


def test_prompt_tokens_do_not_count():
    logits = jnp.zeros((1, 4, 5))
    tokens = jnp.array([[1, 2, 3, 4]])
    nll, mask = sft_token_nll(logits, tokens, jnp.array([[1, 1, 0, 1]]))  # token 2 masked out
    np.testing.assert_array_equal(np.asarray(mask), [[True, False, True]])
    np.testing.assert_allclose(np.asarray(nll), [[np.log(5), 0.0, np.log(5)]], rtol=1e-6)


def test_masked_reductions_ignore_extreme_padding():
    values = jnp.array([[1.0, 2.0, 1e4, -1e4, jnp.inf, jnp.nan]])
    mask = jnp.array([[1, 1, 0, 0, 0, 0]])
    assert float(masked_sum(values, mask)) == 3.0
    assert float(masked_mean(values, mask)) == 1.5
    assert float(masked_mean(values, jnp.zeros_like(mask))) == 0.0


def test_token_logprobs_stay_finite_in_bfloat16():
    logits = jnp.array([[[8192.0, -8192.0, 0.0]]], jnp.bfloat16)  # exactly representable in bf16
    logprobs = token_logprobs(logits, jnp.array([[1]]))
    assert logprobs.dtype == jnp.float32
    assert np.isfinite(np.asarray(logprobs)).all()
    np.testing.assert_allclose(np.asarray(logprobs), [[-16384.0]], rtol=1e-6)
