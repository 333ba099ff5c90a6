"""The GRPO family's pieces (losses/grpo.py) and the loop's GRPO targets and config checks, against hand
computations in plain numpy (TRL parity is in test_grpo_trl.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rlaif_jax import config_defaults
from rlaif_jax.losses import grpo
from rlaif_jax.train import rl_loop


def test_group_advantages_by_hand():
    rewards = np.array([1.0, 2.0, 3.0, 6.0, 0.0, 0.0])  # two groups of 3
    first = np.array([1.0, 2.0, 3.0])
    expected = np.concatenate([(first - 2.0) / (1.0 + 1e-4), np.array([4.0, -2.0, -2.0]) / (np.sqrt(12.0) + 1e-4)])
    np.testing.assert_allclose(np.asarray(grpo.group_advantages(rewards, 3)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grpo.group_advantages(rewards, 3, scale=False)), [-1, 0, 1, 4, -2, -2])


def test_group_size_one_and_ragged_rewards_are_errors():
    with pytest.raises(ValueError, match="group_size >= 2, got 1"):
        grpo.group_advantages(np.ones(4), 1)
    with pytest.raises(ValueError, match=r"\[num_prompts \* 3\] \(prompt-major\), got shape \(4,\)"):
        grpo.group_advantages(np.ones(4), 3)


def test_zero_variance_groups_and_overlong_penalty_by_hand():
    rewards = np.array([1.0, 1.0, 0.0, 1.0, 0.5, 0.5])
    np.testing.assert_array_equal(np.asarray(grpo.zero_variance_groups(rewards, 2)), [True, False, True])
    # L_max 10, L_cache 4: no penalty up to 6 tokens, then (6 - |y|) / 4 down to -1 at 10.
    penalty = grpo.overlong_penalty(np.array([3, 6, 7, 9, 10]), max_length=10, cache_length=4)
    np.testing.assert_allclose(np.asarray(penalty), [0.0, 0.0, -0.25, -0.75, -1.0])
    with pytest.raises(ValueError, match="cache_length=0"):
        grpo.overlong_penalty(np.array([1]), max_length=10, cache_length=0)


def test_tis_weights_truncate_the_ratio():
    mask = np.array([[1, 1, 1, 0]], bool)
    old = np.log(np.array([[0.5, 0.2, 0.9, 0.3]]))
    sampler = np.log(np.array([[0.5, 0.4, 0.3, 0.1]]))
    np.testing.assert_allclose(np.asarray(grpo.tis_weights(old, sampler, mask, cap=2.0)), [[1.0, 0.5, 2.0, 0.0]])
    with pytest.raises(ValueError, match="cap must be > 0"):
        grpo.tis_weights(old, sampler, mask, cap=0.0)


def test_per_token_loss_clips_by_hand():
    """ρ = 1.5 with A > 0 is clipped at 1 + ε_high (no gradient); ρ = 0.5 with A > 0 is not (gradient -A·ρ)."""
    logprobs = jnp.log(jnp.array([[0.6, 0.2, 0.3]]))
    old = np.log(np.array([[0.4, 0.4, 0.3]]))
    mask = np.array([[1, 1, 0]], bool)

    def loss(lp):
        per_token, clipped, ratio = grpo.per_token_loss(
            lp, old, old, np.array([2.0]), mask, eps_low=0.2, eps_high=0.3, kl_coef=0.0
        )
        return per_token.sum(), (per_token, clipped, ratio)

    grad, (per_token, clipped, ratio) = jax.grad(loss, has_aux=True)(logprobs)
    np.testing.assert_allclose(np.asarray(ratio), [[1.5, 0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(per_token), [[-2.0 * 1.3, -2.0 * 0.5, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(clipped), [[True, False, False]])
    np.testing.assert_allclose(np.asarray(grad), [[0.0, -2.0 * 0.5, 0.0]], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="eps_low <= eps_high"):
        grpo.per_token_loss(logprobs, old, old, np.array([1.0]), mask, eps_low=0.3, eps_high=0.2, kl_coef=0.0)


def test_k3_term_and_sequence_ratio_by_hand():
    logprobs = np.log(np.array([[0.5, 0.25]]))
    ref = np.log(np.array([[0.25, 0.25]]))
    old = np.log(np.array([[0.25, 0.5]]))  # token ratios 2 and 0.5: their geometric mean is 1
    mask = np.ones((1, 2), bool)
    per_token, _, ratio = grpo.per_token_loss(
        logprobs, old, ref, np.array([0.0]), mask, eps_low=0.2, eps_high=0.2, kl_coef=0.5, sequence_ratio=True
    )
    np.testing.assert_allclose(np.asarray(ratio), [[1.0, 1.0]], rtol=1e-6)
    k3 = np.array([0.5 - np.log(0.5) - 1.0, 0.0])  # π_ref/π - log(π_ref/π) - 1
    np.testing.assert_allclose(np.asarray(per_token), [0.5 * k3], rtol=1e-6, atol=1e-7)


def test_aggregations_by_hand():
    loss = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = np.array([[1, 1, 1], [1, 0, 0]], bool)
    assert np.allclose(grpo.aggregate(loss, mask, "sequence_mean", max_length=3), (2.0 + 4.0, 2))
    assert np.allclose(grpo.aggregate(loss, mask, "constant_length", max_length=5), (10.0 / 5, 2))
    assert np.allclose(grpo.aggregate(loss, mask, "token_mean", max_length=3), (10.0, 4))


def _rl(**overrides):
    rl = config_defaults.rl("tiny", "grpo")
    rl.samples_per_prompt = 2
    rl.update(overrides)
    return rl


def test_make_targets_grpo_by_hand():
    scores = np.array([1.0, 0.0, 2.0, 2.0])
    mask = np.array([[1, 1], [1, 0], [1, 1], [1, 1]], bool)
    logprobs = np.array([[-1.0, -1.0], [-2.0, 0.0], [-1.0, -0.5], [-0.5, -0.5]])
    ref = np.array([[-1.5, -1.0], [-1.0, 0.0], [-1.0, -1.0], [-0.5, -0.5]])
    targets = rl_loop.make_targets(_rl(), scores, mask, logprobs, ref, None, 0.1)
    unit = 1 / (np.sqrt(0.5) + 1e-4)  # std of {1, 0} with ddof 1 is sqrt(0.5)
    np.testing.assert_allclose(np.asarray(targets["advantages"]), [0.5 * unit, -0.5 * unit, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(targets["ref_logprobs"]), ref)
    # KL in the reward: score - β·Σ k1 first (0.95, 0.1, 1.95, 2.0), then the group normalisation.
    in_reward = rl_loop.make_targets(_rl(kl_in_reward=True, loss="dr_grpo"), scores, mask, logprobs, ref, None, 0.1)
    np.testing.assert_allclose(np.asarray(in_reward["returns"]), [0.95, 0.1, 1.95, 2.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(in_reward["advantages"]), [0.425, -0.425, -0.025, 0.025], atol=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(samples_per_prompt=1), r"samples_per_prompt=1: grpo normalises over each prompt's samples"),
        (dict(loss="ppo"), r"config.rl.loss='ppo'; expected one of"),
        (dict(clip_ratio=0.2, clip_ratio_high=0.1), r"clip_ratio_high=0.1 < config.rl.clip_ratio=0.2"),
        (dict(adaptive_kl=True), r"adaptive_kl needs config.rl.kl_in_reward=True"),
        (dict(tis_cap=-1.0), r"config.rl.tis_cap=-1.0"),
        (dict(overlong_cache=99), r"config.rl.overlong_cache=99"),
    ],
)
def test_bad_grpo_settings_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        rl_loop.check_rl_config(_rl(**overrides))


def test_update_mask_drops_equal_groups_and_truncated_responses():
    rl = _rl(drop_equal_groups=True, overlong_filter=True)
    rollout = ml_collections.ConfigDict()  # only the fields update_mask reads
    rollout.scores = np.array([1.0, 1.0, 0.0, 1.0])
    rollout.response_mask = np.ones((4, 2), bool)
    mask, dropped = rl_loop.update_mask(rl, rollout, truncated=np.array([False, False, True, False]))
    assert dropped == 1
    np.testing.assert_array_equal(mask[:, 0], [False, False, False, True])


@pytest.mark.parametrize("size", ["tiny", "smollm2", "paper"])
def test_every_grpo_config_loads_and_passes_the_loop_checks(size):
    for loss in grpo.LOSSES:
        config = config_defaults.load_config_file("grpo", size if loss == "grpo" else f"{size}_{loss}")
        assert (config.rl.algorithm, config.rl.loss) == ("grpo", loss)
        rl_loop.check_rl_config(config.rl)
        eps_low, eps_high = rl_loop.clip_range(config.rl)
        assert eps_high > eps_low if loss in ("dapo", "gspo") else eps_high == eps_low
    with pytest.raises(ValueError, match=r"unknown argument 'tiny_ppo'; expected SIZE or SIZE_LOSS"):
        config_defaults.load_config_file("grpo", "tiny_ppo")
