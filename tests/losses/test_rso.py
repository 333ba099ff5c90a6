"""RSO (Liu et al. 2023): the losses (eq. 8-10) by hand, Algorithm 1 on fixed and seeded draws, pairing, adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.dpo import dpo_loss
from rlaif_jax.losses.logprobs import sequence_logprobs
from rlaif_jax.losses.rso import make_pairs, rso_loss, rso_loss_fn, statistical_rejection_sample

PROMPT = 3


def test_losses_by_hand():
    # log-ratios: chosen -1 - -2 = 1, rejected -4 - -3 = -1, so h = 2
    args = (jnp.array([-1.0]), jnp.array([-4.0]), jnp.array([-2.0]), jnp.array([-3.0]))
    sigmoid, chosen, rejected = rso_loss(*args, gamma=0.5)  # γ·h = 1
    np.testing.assert_allclose(np.asarray(sigmoid), [np.log1p(np.exp(-1.0))], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(chosen), [0.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(rejected), [-0.5], rtol=1e-6)
    hinge_norm, _, _ = rso_loss(*args, gamma=0.25, loss_type="hinge_norm")  # 1 - 0.25·2
    np.testing.assert_allclose(np.asarray(hinge_norm), [0.5], rtol=1e-6)
    hinge, _, _ = rso_loss(*args, gamma=0.25, loss_type="hinge")  # 1 - 0.25·(-1 - -4), no reference
    np.testing.assert_allclose(np.asarray(hinge), [0.25], rtol=1e-6)
    # sigmoid-norm is DPO with β = γ: ln 2 when policy = reference
    logps = jnp.array([-3.0, -7.0])
    at_reference, _, _ = rso_loss(logps, logps - 2.0, logps, logps - 2.0, gamma=0.05)
    np.testing.assert_allclose(np.asarray(at_reference), np.log(2.0), rtol=1e-6)
    with pytest.raises(ValueError, match="loss_type='sigmoid'"):
        rso_loss(*args, gamma=0.5, loss_type="sigmoid")


def test_bfloat16_margins_of_1e4_stay_finite():
    big = jnp.array([1e4, -1e4], jnp.bfloat16)
    zero = jnp.zeros(2, jnp.bfloat16)
    for loss_type in ("sigmoid_norm", "hinge_norm", "hinge"):
        loss, _, _ = rso_loss(big, -big, zero, zero, gamma=0.05, loss_type=loss_type)
        assert loss.dtype == jnp.float32 and np.isfinite(np.asarray(loss)).all(), loss_type


class FixedDraws:
    """Stands in for np.random.Generator: `uniform()` returns the listed numbers in order."""

    def __init__(self, values):
        self.values, self.used = list(values), 0

    def uniform(self):
        self.used += 1
        return self.values[self.used - 1]


def test_acceptance_rule_on_a_fixed_draw():
    rewards = np.array([0.0, 1.0, 2.0, 1.5])
    # round 1: r_max = 2, thresholds exp(-2) = .135, exp(-1) = .368, 1, exp(-.5) = .607
    #   u = .2 rejects 0, u = .3 accepts 1, u = .9 accepts 2, u = .7 rejects 3
    # round 2: pool {0, 3}, r_max = 1.5, thresholds exp(-1.5) = .223, 1; u = .1 accepts 0 -> 3 kept, stop
    draws = FixedDraws([0.2, 0.3, 0.9, 0.7, 0.1, 0.5])
    kept = statistical_rejection_sample(rewards, num_samples=3, beta=1.0, rng=draws)
    np.testing.assert_array_equal(kept, [1, 2, 0])
    assert draws.used == 5  # no draw after the last acceptance (the paper's `break`)
    # a draw equal to the threshold rejects (u >= exp(...) -> continue)
    draws = FixedDraws([np.exp(-1.0), 0.99, 0.5, 0.5])
    kept = statistical_rejection_sample(np.array([1.0, 2.0]), num_samples=2, beta=1.0, rng=draws)
    np.testing.assert_array_equal(kept, [1, 0])  # round 1 rejects 0, accepts 1; round 2 accepts 0 (r_max = 1)


def paper_algorithm_1(rewards, num_samples, beta, rng):
    """Algorithm 1 of the RSO paper (App. A.1), keyed by index, `np.random.uniform` -> `rng.uniform`."""
    candidates = dict(enumerate(rewards))
    accepted = []
    while len(accepted) < num_samples:
        max_reward = max(candidates.values())
        to_remove = []
        for c, r in candidates.items():
            u = rng.uniform()
            if u >= np.exp((r - max_reward) / beta):
                continue
            accepted.append(c)
            to_remove.append(c)
            if len(accepted) == num_samples:
                break
        for c in to_remove:
            candidates.pop(c)
    return accepted


@pytest.mark.parametrize("beta", [0.05, 0.5, 5.0])
def test_equals_paper_algorithm_on_seeded_draws(beta):
    rewards = np.random.default_rng(1).normal(size=64)  # the paper: 64 SFT decodes, keep 8
    kept = statistical_rejection_sample(rewards, num_samples=8, beta=beta, rng=np.random.default_rng(42))
    expected = paper_algorithm_1(list(rewards), 8, beta, np.random.default_rng(42))
    np.testing.assert_array_equal(kept, expected)
    assert len(set(kept.tolist())) == 8


def test_beta_limits_and_running_out():
    rewards = np.array([0.3, 2.0, -1.0, 1.0, 0.5])
    top = statistical_rejection_sample(rewards, num_samples=3, beta=0.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(top, [1, 3, 4])  # β -> 0: top-k-over-N, best first
    everyone = statistical_rejection_sample(rewards, num_samples=3, beta=1e12, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(everyone, [0, 1, 2])  # β -> ∞: every SFT sample accepted in order
    all_of_them = statistical_rejection_sample(rewards, num_samples=8, beta=0.5, rng=np.random.default_rng(0))
    assert sorted(all_of_them.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="shape"):
        statistical_rejection_sample(rewards[None], num_samples=2, beta=0.5, rng=np.random.default_rng(0))


def test_make_pairs_first_round_and_tournament():
    rewards = np.array([0.1, 0.9, 0.4, 0.4, 0.7, 0.2, 0.8, 0.3])
    indices = [4, 1, 0, 2, 3, 5, 7, 6]
    assert make_pairs(indices, rewards) == [(1, 4), (2, 0), (3, 5), (6, 7)]
    # round 1 as above (winners 1, 2, 3, 6); round 2: (1 vs 2) -> (1, 2), (3 vs 6) -> (6, 3); final (1 vs 6) -> (1, 6)
    assert make_pairs(indices, rewards, method="tournament") == [(1, 4), (2, 0), (3, 5), (6, 7), (1, 2), (6, 3), (1, 6)]
    # a tie is no pair (the earlier one advances); an odd one out gets a bye
    assert make_pairs([2, 3, 0], rewards, method="tournament") == [(2, 0)]
    assert make_pairs([2, 3, 0], rewards) == []
    with pytest.raises(ValueError, match="method='random'"):
        make_pairs(indices, rewards, method="random")


def pair_batch(seed: int, num_pairs: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    batch = {}
    for prefix, length in (("chosen", 7), ("rejected", 9)):
        tokens = rng.integers(3, 128, (num_pairs, length)).astype(np.int32)
        lengths = rng.integers(PROMPT + 1, length + 1, num_pairs)
        positions = np.arange(length)[None]
        attention = positions < lengths[:, None]
        batch[f"{prefix}_tokens"] = np.where(attention, tokens, 0)
        batch[f"{prefix}_attention_mask"] = attention
        batch[f"{prefix}_loss_mask"] = attention & (positions >= PROMPT)
    batch["reference_chosen_logps"] = rng.normal(-20.0, 3.0, num_pairs).astype(np.float32)
    batch["reference_rejected_logps"] = rng.normal(-20.0, 3.0, num_pairs).astype(np.float32)
    return batch


@pytest.fixture(scope="module")
def lm(make_tiny_lm):
    return make_tiny_lm(seed=6)


@pytest.mark.parametrize("loss_type", ["sigmoid_norm", "hinge_norm", "hinge"])
def test_adapter_is_rso_loss_on_sequence_logprobs(lm, loss_type):
    batch = pair_batch(0)
    logps = jax.jit(sequence_logprobs, static_argnums=0)
    chosen, rejected = (
        logps(lm.module, lm.params, *(batch[f"{prefix}_{key}"] for key in ("tokens", "attention_mask", "loss_mask")))[0]
        for prefix in ("chosen", "rejected")
    )
    ref_c, ref_r = jnp.asarray(batch["reference_chosen_logps"]), jnp.asarray(batch["reference_rejected_logps"])
    expected, reward_c, reward_r = rso_loss(chosen, rejected, ref_c, ref_r, gamma=0.05, loss_type=loss_type)
    loss_fn = rso_loss_fn(lm.module, gamma=0.05, loss_type=loss_type)
    (loss_sum, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(lm.params, batch, None, None)
    np.testing.assert_allclose(float(loss_sum), float(jnp.sum(expected)), rtol=1e-5)
    assert all(float(count) == 3.0 for _, count in metrics.values())
    np.testing.assert_allclose(float(metrics["reward_margin"][0]), float(jnp.sum(reward_c - reward_r)), rtol=1e-5)
    if loss_type == "sigmoid_norm":  # = DPO with β = γ
        dpo, _, _ = dpo_loss(chosen, rejected, ref_c, ref_r, beta=0.05)
        np.testing.assert_allclose(float(loss_sum), float(jnp.sum(dpo)), rtol=1e-6)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0.0
