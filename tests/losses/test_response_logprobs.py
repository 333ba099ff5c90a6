"""response_logprobs: the response-only, vocabulary-chunked LM head and the shared-prefix forward equal the plain
full forward pass, values and gradients (float32 on CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses import ppo
from rlaif_jax.losses.logprobs import (
    groups_share_prompts,
    response_logprobs,
    response_logprobs_and_entropy,
    token_logprobs,
)

PROMPT, RESPONSE, GROUPS, G = 6, 5, 3, 4


def _rollout_batch(seed=0):
    """Prompt-major rows: left-padded prompts (a different length per group), right-padded responses."""
    rng = np.random.default_rng(seed)
    n = GROUPS * G
    tokens = np.zeros((n, PROMPT + RESPONSE), np.int32)
    mask = np.zeros(tokens.shape, bool)
    for group, length in enumerate([6, 3, 1]):
        prompt = rng.integers(3, 128, length)
        for row in range(group * G, group * G + G):
            tokens[row, PROMPT - length : PROMPT] = prompt
            mask[row, PROMPT - length : PROMPT] = True
            response_length = int(rng.integers(1, RESPONSE + 1))
            tokens[row, PROMPT : PROMPT + response_length] = rng.integers(3, 128, response_length)
            mask[row, PROMPT : PROMPT + response_length] = True
    return tokens, mask


def _full_forward(lm, params, tokens, mask, temperature):
    logits = lm.module.apply({"params": params}, tokens, attention_mask=mask)[:, PROMPT - 1 : -1] / temperature
    return token_logprobs(logits, tokens[:, PROMPT:]), logits


@pytest.mark.parametrize("scan_layers,vocab_chunk_size", [(True, 0), (False, 0), (True, 40)])
def test_shared_prefix_and_response_only_head_match_the_full_forward(make_tiny_lm, scan_layers, vocab_chunk_size):
    # vocab_chunk_size 40: the 128-id vocabulary runs in 4 strided chunks of 32.
    lm = make_tiny_lm(scan_layers=scan_layers, num_kv_heads=2, num_heads=4, vocab_chunk_size=vocab_chunk_size)
    tokens, mask = _rollout_batch()
    response_mask = mask[:, PROMPT:]
    assert groups_share_prompts(tokens, PROMPT, G)
    expected, expected_logits = _full_forward(lm, lm.params, tokens, mask, 0.7)
    expected_entropy = ppo.entropy_from_logits(expected_logits)
    for group_size in (1, G):
        logprobs, entropy = jax.jit(
            lambda p, group_size=group_size: response_logprobs_and_entropy(
                lm.module, p, tokens, mask, PROMPT, temperature=0.7, group_size=group_size
            )
        )(lm.params)
        assert logprobs.shape == entropy.shape == (GROUPS * G, RESPONSE)
        np.testing.assert_allclose(
            np.where(response_mask, logprobs, 0), np.where(response_mask, expected, 0), atol=2e-5
        )
        np.testing.assert_allclose(
            np.where(response_mask, entropy, 0), np.where(response_mask, expected_entropy, 0), atol=2e-5
        )

    def loss(params, group_size):
        if group_size == 0:
            logprobs, _ = _full_forward(lm, params, tokens, mask, 0.7)
        else:
            logprobs = response_logprobs(
                lm.module, params, tokens, mask, PROMPT, temperature=0.7, group_size=group_size
            )
        return jnp.sum(jnp.where(response_mask, logprobs, 0.0) * np.linspace(-1, 1, RESPONSE))

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    reference = grad(lm.params, 0)
    for group_size in (1, G):
        grads = grad(lm.params, group_size)
        worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), grads, reference)))
        scale = max(jax.tree.leaves(jax.tree.map(lambda a: float(jnp.max(jnp.abs(a))), reference)))
        assert worst <= 1e-5 * scale, (group_size, worst, scale)


def test_groups_share_prompts_rejects_mixed_groups_and_partial_groups():
    tokens, _ = _rollout_batch()
    assert not groups_share_prompts(tokens[1:], PROMPT, G)  # rows shifted by one: groups straddle prompts
    assert not groups_share_prompts(tokens[: G + 1], PROMPT, G)  # not whole groups
    shuffled = tokens[np.random.default_rng(0).permutation(len(tokens))]
    assert not groups_share_prompts(shuffled, PROMPT, G)
    assert groups_share_prompts(shuffled, PROMPT, 1)


def test_shared_prefix_needs_whole_groups(make_tiny_lm):
    lm = make_tiny_lm()
    tokens, mask = _rollout_batch()
    with pytest.raises(ValueError, match="whole groups of group_size=5"):
        response_logprobs(lm.module, lm.params, tokens, mask, PROMPT, group_size=5)
