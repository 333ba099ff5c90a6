"""Direct preference optimisation and its relatives on summed sequence log-probs.

DPO (Rafailov et al. 2023, eq. 7): -log σ(β·[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]).
cDPO (Mitchell 2023): label smoothing ε mixes in the flipped-label loss. IPO (Azar et al. 2023, eq. 17):
(h - 1/(2β))². Hinge (SLiC-style, Zhao et al. 2023 / RSO hinge): max(0, 1 - β·h).

`dpo_loss_fn` is the train-step adapter (its 'ipo' length-normalises the log-ratios, as TRL does);
`pair_sequence_logprobs` (chosen and rejected in one forward pass) is shared with `slic.py` and `rso.py`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import sequence_logprobs

LOSS_TYPES = ("sigmoid", "ipo", "hinge")


def dpo_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    reference_chosen_logps: jax.Array,
    reference_rejected_logps: jax.Array,
    *,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-example preference loss from summed sequence log-probs (all `[batch]`, any float dtype).

    Returns (loss [batch], chosen_rewards [batch], rejected_rewards [batch]) in float32, where the implicit rewards
    are β·(log π - log π_ref) and are constants (no gradient). Finite for bf16 inputs and margins of ±1e4.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r}; expected one of {LOSS_TYPES}")
    chosen_ratio = policy_chosen_logps.astype(jnp.float32) - reference_chosen_logps.astype(jnp.float32)
    rejected_ratio = policy_rejected_logps.astype(jnp.float32) - reference_rejected_logps.astype(jnp.float32)
    margin = chosen_ratio - rejected_ratio  # h in the papers
    if loss_type == "sigmoid":
        loss = -(1.0 - label_smoothing) * jax.nn.log_sigmoid(beta * margin) - label_smoothing * jax.nn.log_sigmoid(
            -beta * margin
        )
    elif loss_type == "ipo":
        loss = (margin - 1.0 / (2.0 * beta)) ** 2
    else:
        loss = jax.nn.relu(1.0 - beta * margin)
    rewards = jax.lax.stop_gradient(beta * jnp.stack([chosen_ratio, rejected_ratio]))
    return loss, rewards[0], rewards[1]


# Adapter: `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)` for `train.step.make_train_step`.


def _pad_to(x: jax.Array, length: int) -> jax.Array:
    """Right-pads the seq axis of `[batch, seq]` with zeros (pad token, mask 0) up to `length`."""
    return jnp.pad(x, ((0, 0), (0, length - x.shape[1])))


def batched_sequence_logprobs(module, params, groups) -> list[tuple[jax.Array, jax.Array]]:
    """`sequence_logprobs` of several `(tokens, attention_mask, loss_mask)` groups (each `[batch_g, seq_g]`) in ONE
    forward pass: rows are concatenated on the batch axis (shorter sequences right-padded, which changes nothing for
    a causal model). Returns one (logps float32 [batch_g], num_tokens float32 [batch_g]) per group."""
    length = max(tokens.shape[1] for tokens, _, _ in groups)
    tokens, attention_mask, loss_mask = (
        jnp.concatenate([_pad_to(jnp.asarray(group[k]), length) for group in groups], axis=0) for k in range(3)
    )
    logps, counts = sequence_logprobs(module, params, tokens, attention_mask, loss_mask)
    sizes = [group[0].shape[0] for group in groups]
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return [(logps[a:b], counts[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def pair_sequence_logprobs(module, params, batch, prefixes=("chosen", "rejected")):
    """Summed log π and token counts of each `{prefix}_tokens / _attention_mask / _loss_mask` `[batch, seq]` group in
    the batch, from one forward pass. Returns [(logps [batch], num_tokens [batch]), ...] in `prefixes` order."""
    for prefix in prefixes:
        for key in ("tokens", "attention_mask", "loss_mask"):
            if (column := f"{prefix}_{key}") not in batch:
                raise KeyError(f"preference batch has no {column!r} column; it has {sorted(batch)}")
    groups = [
        tuple(batch[f"{prefix}_{key}"] for key in ("tokens", "attention_mask", "loss_mask")) for prefix in prefixes
    ]
    return batched_sequence_logprobs(module, params, groups)


def reference_logps(batch) -> tuple[jax.Array, jax.Array]:
    """The batch's precomputed `reference_chosen_logps, reference_rejected_logps` (`[batch]`) as float32."""
    for key in ("reference_chosen_logps", "reference_rejected_logps"):
        if key not in batch:
            raise KeyError(f"preference batch has no {key!r} column (precompute log π_ref); it has {sorted(batch)}")
    return tuple(jnp.asarray(batch[key], jnp.float32) for key in ("reference_chosen_logps", "reference_rejected_logps"))


def preference_metrics(loss, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps):
    """(sum, count over pairs) metrics shared by the pairwise adapters; every argument is float32 `[batch]`."""
    count = jnp.asarray(loss.shape[0], jnp.float32)
    loss_sum = jnp.sum(loss)
    return loss_sum, {
        "loss": (loss_sum, count),
        "accuracy": (jnp.sum((chosen_rewards > rejected_rewards).astype(jnp.float32)), count),
        "reward_chosen": (jnp.sum(chosen_rewards), count),
        "reward_rejected": (jnp.sum(rejected_rewards), count),
        "reward_margin": (jnp.sum(chosen_rewards - rejected_rewards), count),
        "logps_chosen": (jnp.sum(chosen_logps), count),
        "logps_rejected": (jnp.sum(rejected_logps), count),
    }


def dpo_loss_fn(
    module, *, beta: float, loss_type: str = "sigmoid", label_smoothing: float = 0.0, soft_labels: bool = False
):
    """A DPO-family `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)`; chosen and rejected go through the
    model in one forward pass (concatenated on the batch axis).

    batch: chosen_tokens, chosen_attention_mask, chosen_loss_mask, rejected_tokens, rejected_attention_mask,
      rejected_loss_mask `[batch, seq]` (loss_mask = 1 on response tokens incl. EOS, as `sequence_logprobs`);
      reference_chosen_logps, reference_rejected_logps float32 `[batch]` (summed log π_ref, precomputed).
    soft_labels: batch['preference'] float32 `[batch]` = P(chosen preferred) is each pair's label and the loss is
      the cross-entropy `-p·log σ(βh) - (1 - p)·log σ(-βh)` (cDPO with a per-pair ε = 1 - p; 'sigmoid' only).
    'ipo' uses per-token-averaged log-ratios (log-probs / response length, chosen and rejected each by their own
      length), as TRL does on the IPO authors' advice; the others use summed log-probs (DPO eq. 7).
    metrics ((sum, count) over pairs): loss, accuracy (implicit reward chosen > rejected), reward_chosen,
      reward_rejected, reward_margin (rewards are β·(log π - log π_ref), summed), logps_chosen, logps_rejected.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r}; expected one of {LOSS_TYPES}")
    if soft_labels and (loss_type != "sigmoid" or label_smoothing):
        raise ValueError("soft labels need loss_type='sigmoid' and label_smoothing=0 (the label is the smoothing)")

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        (chosen_logps, chosen_counts), (rejected_logps, rejected_counts) = pair_sequence_logprobs(module, params, batch)
        reference_chosen, reference_rejected = reference_logps(batch)
        loss, chosen_rewards, rejected_rewards = dpo_loss(
            chosen_logps,
            rejected_logps,
            reference_chosen,
            reference_rejected,
            beta=beta,
            loss_type=loss_type,
            label_smoothing=1.0 - batch["preference"].astype(jnp.float32) if soft_labels else label_smoothing,
        )
        if loss_type == "ipo":
            chosen_length, rejected_length = jnp.maximum(chosen_counts, 1.0), jnp.maximum(rejected_counts, 1.0)
            loss, _, _ = dpo_loss(
                chosen_logps / chosen_length,
                rejected_logps / rejected_length,
                reference_chosen / chosen_length,
                reference_rejected / rejected_length,
                beta=beta,
                loss_type="ipo",
            )
        return preference_metrics(loss, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps)

    return loss_fn
