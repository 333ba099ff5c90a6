"""RSO: statistical rejection sampling optimisation (Liu et al. 2023, arXiv 2309.06657).

Pairs come from the estimated optimal policy π_r(y|x) ∝ π_sft(y|x)·exp(r(x, y)/β) (eq. 4): sample 64 decodes from
π_sft, keep 8 by statistical rejection sampling (Algorithm 1, App. A.1; β = 0.5), pair them by first-round or
tournament ranking (§5.2) and label each pair by the reward. The policy is then fitted with a loss whose temperature
γ (0.05) is decoupled from the sampling β:
- sigmoid-norm (eq. 8, DPO with γ): `-log σ(γ·[log π(y_w)/π_sft(y_w) - log π(y_l)/π_sft(y_l)])`,
- hinge-norm (eq. 10): `max(0, 1 - γ·[log π(y_w)/π_sft(y_w) - log π(y_l)/π_sft(y_l)])`,
- hinge (eq. 9, SLiC without its regulariser; margin δ = 1/γ): `max(0, 1 - γ·[log π(y_w) - log π(y_l)])`.
"Norm" is the normalisation by π_sft (the reference), not by length (TRL's `sigmoid_norm` is length-averaged DPO).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlaif_jax.losses.dpo import dpo_loss, pair_sequence_logprobs, preference_metrics, reference_logps

LOSS_TYPES = ("sigmoid_norm", "hinge_norm", "hinge")
PAIRING_METHODS = ("first_round", "tournament")


def rso_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    reference_chosen_logps: jax.Array,
    reference_rejected_logps: jax.Array,
    *,
    gamma: float,
    loss_type: str = "sigmoid_norm",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-example RSO loss (eq. 8, 9 or 10) from summed sequence log-probs (all `[batch]`, any float dtype).

    The reference log-probs are π_sft's ('hinge' ignores them). Returns (loss [batch], chosen_rewards [batch],
    rejected_rewards [batch]) in float32; rewards are γ·(log π - log π_sft), constants. Finite for bf16 and ±1e4.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r}; expected one of {LOSS_TYPES}")
    if loss_type == "hinge":
        zeros = jnp.zeros_like(policy_chosen_logps, jnp.float32)
        loss, _, _ = dpo_loss(policy_chosen_logps, policy_rejected_logps, zeros, zeros, beta=gamma, loss_type="hinge")
        _, chosen_rewards, rejected_rewards = dpo_loss(
            policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta=gamma
        )
        return loss, chosen_rewards, rejected_rewards
    return dpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta=gamma,
        loss_type="sigmoid" if loss_type == "sigmoid_norm" else "hinge",
    )


def rso_loss_fn(module, *, gamma: float, loss_type: str = "sigmoid_norm"):
    """An RSO `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)` on the pairwise batch of
    `dpo.dpo_loss_fn` (chosen_/rejected_ tokens, attention_mask, loss_mask `[batch, seq]`; reference_chosen_logps,
    reference_rejected_logps float32 `[batch]`, π_sft's summed log-probs). One forward pass for both responses.

    metrics ((sum, count) over pairs): loss, accuracy, reward_chosen, reward_rejected, reward_margin (γ-scaled
    log-ratios), logps_chosen, logps_rejected.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r}; expected one of {LOSS_TYPES}")

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        (chosen_logps, _), (rejected_logps, _) = pair_sequence_logprobs(module, params, batch)
        loss, chosen_rewards, rejected_rewards = rso_loss(
            chosen_logps, rejected_logps, *reference_logps(batch), gamma=gamma, loss_type=loss_type
        )
        return preference_metrics(loss, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps)

    return loss_fn


def statistical_rejection_sample(
    rewards: np.ndarray, *, num_samples: int, beta: float, rng: np.random.Generator
) -> np.ndarray:
    """RSO Algorithm 1: sub-sample candidates from π_sft toward π_r ∝ π_sft·exp(r/β), without replacement.

    Each round takes r_max over the candidates not yet accepted, then visits them in index order, drawing one
    u = rng.uniform() per visit and accepting the candidate when u < exp((r - r_max)/β); the round stops early once
    num_samples are accepted, and the accepted ones leave the pool before the next round. The best remaining
    candidate is always accepted (u < 1), so every round accepts at least one. β = 0 keeps only rewards equal to
    r_max each round (top-k-over-N). The paper keys candidates by text, so identical decodes count once: de-duplicate
    before calling to match it exactly. The draw order matches the paper's code with `np.random.uniform` -> `rng`.

    rewards: float `[num_candidates]` (the paper: 64 SFT decodes, num_samples 8, β 0.5). Returns int64
    `[min(num_samples, num_candidates)]` candidate indices in acceptance order.
    """
    rewards = np.asarray(rewards, np.float64)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be [num_candidates]; got shape {rewards.shape}")
    if not np.all(np.isfinite(rewards)):
        raise ValueError(f"rewards must be finite; got {rewards}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0; got {beta}")
    remaining = list(range(rewards.shape[0]))
    accepted: list[int] = []
    target = min(num_samples, rewards.shape[0])
    while len(accepted) < target:
        max_reward = max(rewards[index] for index in remaining)
        taken = []
        for index in remaining:
            u = rng.uniform()
            gap = rewards[index] - max_reward
            threshold = (1.0 if gap == 0 else 0.0) if beta == 0 else np.exp(gap / beta)
            if u >= threshold:
                continue
            accepted.append(index)
            taken.append(index)
            if len(accepted) == target:
                break
        remaining = [index for index in remaining if index not in taken]
    return np.asarray(accepted, np.int64)


def make_pairs(indices, rewards, *, method: str = "first_round") -> list[tuple[int, int]]:
    """Preference pairs `(chosen_index, rejected_index)` from sampled candidates, labelled by their rewards (§5.2).

    indices: candidate indices `[n]` (e.g. from `statistical_rejection_sample`; shuffle them first for random
    pairings); rewards: `[num_candidates]`, indexed by candidate. 'first_round': consecutive pairs (0, 1), (2, 3), ...
    of `indices` (n // 2 pairs; an odd last one is left out). 'tournament': the first round, then the winners play
    on in the same way (an odd one out gets a bye) until one is left; every match played is a pair (n - 1 in all).
    The higher reward is chosen; on a tie the earlier candidate wins (advances) but the match is not a pair, since
    equal rewards state no preference.
    """
    if method not in PAIRING_METHODS:
        raise ValueError(f"method={method!r}; expected one of {PAIRING_METHODS}")
    rewards = np.asarray(rewards)
    players = [int(index) for index in indices]
    pairs: list[tuple[int, int]] = []
    while len(players) >= 2:
        winners = []
        for first, second in zip(players[0::2], players[1::2]):
            winner, loser = (second, first) if rewards[second] > rewards[first] else (first, second)
            if rewards[winner] != rewards[loser]:
                pairs.append((winner, loser))
            winners.append(winner)
        if method == "first_round":
            break
        players = winners + players[len(winners) * 2 :]
    return pairs
