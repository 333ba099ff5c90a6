"""Reward-model losses: pairwise Bradley–Terry, InstructGPT's K-way ranking, and RLAIF's soft-label distillation.

- Bradley–Terry, `-log σ(r_w - r_l)` (Ouyang et al. 2022 §3.5; Lee et al. 2023 App. A.2 for human labels), with an
  optional per-pair margin (Touvron et al. 2023, Llama 2 §3.2.2).
- InstructGPT eq. 1: `loss(θ) = -1/C(K,2) · E[log σ(r(x,y_w) - r(x,y_l))]` over all C(K,2) pairs of one prompt.
- Distilled RLAIF (Lee et al. 2023 §2.2.1): cross-entropy between the softmax of the two RM scores and the soft AI
  label, e.g. [0.6, 0.4].
- InstructGPT §3.5: before RL the RM gets a bias so that labeler demonstrations score a mean of 0.

All math is float32 (inputs upcast). Functions return per-example values; the caller reduces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import dropout_rngs


def last_token_index(attention_mask: jax.Array) -> jax.Array:
    """Position of the last non-pad token of each row, for left or right padding.

    attention_mask: [batch, seq], nonzero on real tokens. Returns int32 [batch]; 0 for a row with no tokens.
    """
    positions = jnp.arange(attention_mask.shape[-1], dtype=jnp.int32)
    return jnp.max(jnp.where(attention_mask.astype(bool), positions, 0), axis=-1)


def rewards_at_last_token(scores: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """The reward head's score at the last non-pad token (the EOS when there is one), never at padding.

    scores: [batch, seq]; attention_mask: [batch, seq]. Returns float32 [batch].
    """
    index = last_token_index(attention_mask)
    return jnp.take_along_axis(scores.astype(jnp.float32), index[:, None], axis=-1)[:, 0]


def bradley_terry_loss(
    chosen_rewards: jax.Array, rejected_rewards: jax.Array, *, margin: jax.Array | float = 0.0
) -> jax.Array:
    """Pairwise Bradley–Terry loss `-log σ(r_c - r_r - margin)` (InstructGPT eq. 1 with K = 2; Llama 2 margin).

    chosen_rewards, rejected_rewards: [batch]; margin: scalar or [batch]. Returns float32 [batch].
    """
    difference = chosen_rewards.astype(jnp.float32) - rejected_rewards.astype(jnp.float32)
    return -jax.nn.log_sigmoid(difference - jnp.asarray(margin, jnp.float32))


def ranking_loss(rewards: jax.Array, valid: jax.Array) -> jax.Array:
    """InstructGPT eq. 1 for one prompt's K ranked responses: `-1/C(K_v,2) Σ_{i<j} log σ(r_i - r_j)`.

    rewards: [batch, K], in rank order (index 0 = best); valid: [batch, K], nonzero on the K_v responses a prompt
    has (its others are padding). Pairs use valid responses only. Returns float32 [batch]; 0 for rows with K_v < 2.
    """
    valid = valid.astype(bool)
    rewards = jnp.where(valid, rewards.astype(jnp.float32), 0.0)
    num_responses = rewards.shape[-1]
    upper = jnp.arange(num_responses)[:, None] < jnp.arange(num_responses)[None, :]  # i better than j
    pair_mask = upper[None] & valid[:, :, None] & valid[:, None, :]
    difference = jnp.where(pair_mask, rewards[:, :, None] - rewards[:, None, :], 0.0)
    pair_losses = jnp.where(pair_mask, -jax.nn.log_sigmoid(difference), 0.0)
    num_valid = jnp.sum(valid, axis=-1).astype(jnp.float32)
    num_pairs = num_valid * (num_valid - 1.0) / 2.0
    return jnp.sum(pair_losses, axis=(1, 2)) / jnp.maximum(num_pairs, 1.0)


def soft_label_loss(rewards_a: jax.Array, rewards_b: jax.Array, preference_a: jax.Array) -> jax.Array:
    """Distilled RLAIF RM loss (Lee et al. 2023 §2.2.1): cross-entropy of softmax([r_a, r_b]) against [p, 1 - p].

    `-(p·log σ(r_a - r_b) + (1 - p)·log σ(r_b - r_a))`, p = the AI labeler's P(A preferred).
    rewards_a, rewards_b, preference_a: [batch]. Returns float32 [batch].
    """
    difference = rewards_a.astype(jnp.float32) - rewards_b.astype(jnp.float32)
    p = preference_a.astype(jnp.float32)
    return -(p * jax.nn.log_sigmoid(difference) + (1.0 - p) * jax.nn.log_sigmoid(-difference))


def pairwise_accuracy(chosen_rewards: jax.Array, rejected_rewards: jax.Array) -> jax.Array:
    """1.0 where the RM ranks the chosen response higher, 0.5 on ties, 0.0 otherwise.

    chosen_rewards, rejected_rewards: [batch]. Returns float32 [batch].
    """
    chosen = chosen_rewards.astype(jnp.float32)
    rejected = rejected_rewards.astype(jnp.float32)
    return jnp.where(chosen > rejected, 1.0, jnp.where(chosen == rejected, 0.5, 0.0))


def reward_bias(demonstration_rewards: jax.Array) -> jax.Array:
    """The bias to subtract from the RM so labeler demonstrations score a mean of 0 (InstructGPT §3.5).

    demonstration_rewards: [n], the RM's scores of the demonstrations. Returns their float32 mean, a scalar.
    """
    return jnp.mean(demonstration_rewards.astype(jnp.float32))


# Adapters: `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)` for `train.step.make_train_step`.

PAIRWISE_LOSS_TYPES = ("bradley_terry", "soft_label")


def sequence_rewards(
    module, params, tokens: jax.Array, attention_mask: jax.Array, dropout_rng: jax.Array | None = None
) -> jax.Array:
    """The reward of each right- or left-padded sequence: the scalar head at its last non-pad token.

    tokens, attention_mask: [batch, seq]; `dropout_rng`: a training pass (LoRA dropout on). Returns float32 [batch].
    """
    scores = module.apply(
        {"params": params},
        tokens,
        attention_mask=attention_mask,
        method=module.scalar,
        rngs=dropout_rngs(dropout_rng),
    )
    return rewards_at_last_token(scores, attention_mask)


def pairwise_reward_loss_fn(module, *, loss_type: str = "bradley_terry"):
    """A reward-model `loss_fn` on pairs; chosen and rejected go through the model in one forward pass.

    batch: chosen_tokens, chosen_attention_mask, rejected_tokens, rejected_attention_mask [batch, seq]; margin
      [batch] ('bradley_terry': `-log σ(r_c - r_r - margin)`), preference [batch] ('soft_label': RLAIF §2.2.1's
      cross-entropy against P(chosen preferred)).
    metrics ((sum, count) over pairs): loss, accuracy (the RM agrees with the 'chosen' column), reward_chosen,
      reward_rejected, reward_margin (r_c - r_r).
    """
    if loss_type not in PAIRWISE_LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r}; expected one of {PAIRWISE_LOSS_TYPES}")

    def loss_fn(params, batch, rng, frozen):
        del frozen
        num_pairs = batch["chosen_tokens"].shape[0]
        tokens = jnp.concatenate([batch["chosen_tokens"], batch["rejected_tokens"]], axis=0)
        mask = jnp.concatenate([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], axis=0)
        rewards = sequence_rewards(module, params, tokens, mask, rng)
        chosen, rejected = rewards[:num_pairs], rewards[num_pairs:]
        if loss_type == "bradley_terry":
            losses = bradley_terry_loss(chosen, rejected, margin=batch["margin"])
        else:
            losses = soft_label_loss(chosen, rejected, batch["preference"])
        count = jnp.asarray(num_pairs, jnp.float32)
        loss_sum = jnp.sum(losses)
        return loss_sum, {
            "loss": (loss_sum, count),
            "accuracy": (jnp.sum(pairwise_accuracy(chosen, rejected)), count),
            "reward_chosen": (jnp.sum(chosen), count),
            "reward_rejected": (jnp.sum(rejected), count),
            "reward_margin": (jnp.sum(chosen - rejected), count),
        }

    return loss_fn


def ranking_pair_accuracy(rewards: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pairwise accuracy over every pair (i better than j) of valid ranked responses: (sum, number of pairs).

    rewards, valid: [batch, K] in rank order (index 0 = best). Returns two float32 scalars.
    """
    valid = valid.astype(bool)
    num_responses = rewards.shape[-1]
    upper = jnp.arange(num_responses)[:, None] < jnp.arange(num_responses)[None, :]
    pair_mask = upper[None] & valid[:, :, None] & valid[:, None, :]
    better, worse = jnp.broadcast_arrays(rewards[:, :, None], rewards[:, None, :])
    correct = jnp.where(pair_mask, pairwise_accuracy(better, worse), 0.0)
    return jnp.sum(correct), jnp.sum(pair_mask).astype(jnp.float32)


def ranking_reward_loss_fn(module):
    """A reward-model `loss_fn` on K-way rankings, one batch element per prompt (InstructGPT §3.5, eq. 1).

    batch: tokens, attention_mask [batch, K, seq] (responses best first), valid [batch, K]. The model runs once on
    [batch * K, seq]; each prompt's loss is the mean over its C(K_v, 2) pairs (`ranking_loss`), and the loss count
    is the number of prompts with K_v >= 2, so a batch without one leaves the params unchanged.
    metrics: loss (sum, prompts), accuracy (over all valid pairs), reward (mean over valid responses).
    """

    def loss_fn(params, batch, rng, frozen):
        del frozen
        num_prompts, num_responses, seq = batch["tokens"].shape
        rewards = sequence_rewards(
            module,
            params,
            batch["tokens"].reshape(num_prompts * num_responses, seq),
            batch["attention_mask"].reshape(num_prompts * num_responses, seq),
            rng,
        ).reshape(num_prompts, num_responses)
        valid = batch["valid"].astype(bool)
        num_valid = jnp.sum(valid, axis=-1)
        loss_sum = jnp.sum(ranking_loss(rewards, valid))
        count = jnp.sum(num_valid >= 2).astype(jnp.float32)
        return loss_sum, {
            "loss": (loss_sum, count),
            "accuracy": ranking_pair_accuracy(rewards, valid),
            "reward": (jnp.sum(jnp.where(valid, rewards, 0.0)), jnp.sum(num_valid).astype(jnp.float32)),
        }

    return loss_fn
