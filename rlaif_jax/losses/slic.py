"""SLiC-HF: sequence likelihood calibration with human feedback (Zhao et al. 2023, arXiv 2305.10425, eq. 3/4).

`L(θ) = max(0, δ - log P_θ(y+|x) + log P_θ(y-|x)) - λ·log P_θ(y_ref|x)`: a hinge on the difference of summed (not
length-normalised) sequence log-likelihoods with margin δ, plus a calibration regulariser, the NLL of a reference
target y_ref (the SFT target, or the best-ranked decode). There is no reference model and no KL term.

The two variants differ only in where the pairs come from (the pipeline's job): SLiC-HF-direct trains on the human
pairs of D_HF; SLiC-HF-sample-rank samples m = 8 decodes from the SFT policy and labels pairs with a ranker or RM.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.losses.dpo import pair_sequence_logprobs


def slic_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    target_nll: jax.Array,
    *,
    margin: float,
    regularization_weight: float,
) -> jax.Array:
    """Per-example SLiC-HF loss `max(0, δ - log P(y+) + log P(y-)) + λ·NLL(y_ref)` (eq. 3/4).

    policy_chosen_logps, policy_rejected_logps: summed log P_θ of y+ and y- `[batch]`; target_nll: -log P_θ(y_ref|x)
    summed over the target's tokens `[batch]`; margin: δ (1.0 in the paper); regularization_weight: λ (the paper's
    value is UNVERIFIED). Any float dtype; the math is float32. Returns float32 `[batch]`.
    """
    difference = policy_chosen_logps.astype(jnp.float32) - policy_rejected_logps.astype(jnp.float32)
    rank_loss = jax.nn.relu(margin - difference)
    return rank_loss + regularization_weight * target_nll.astype(jnp.float32)


def slic_loss_fn(module, *, margin: float, regularization_weight: float):
    """A SLiC-HF `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)`; chosen, rejected and the calibration
    target go through the model in one forward pass.

    batch: chosen_/rejected_/target_ tokens, attention_mask, loss_mask `[batch, seq]` (loss_mask = 1 on the response
      incl. EOS). The target is the SFT/reference response (or the chosen one when there is none). No reference logps.
    metrics ((sum, count) over pairs): loss, rank_loss (the hinge), target_nll, accuracy (log P(y+) > log P(y-)),
      logps_chosen, logps_rejected, logps_margin.
    """

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        (chosen_logps, _), (rejected_logps, _), (target_logps, _) = pair_sequence_logprobs(
            module, params, batch, prefixes=("chosen", "rejected", "target")
        )
        loss = slic_loss(
            chosen_logps, rejected_logps, -target_logps, margin=margin, regularization_weight=regularization_weight
        )
        count = jnp.asarray(loss.shape[0], jnp.float32)
        loss_sum = jnp.sum(loss)
        return loss_sum, {
            "loss": (loss_sum, count),
            "rank_loss": (jnp.sum(jax.nn.relu(margin - (chosen_logps - rejected_logps))), count),
            "target_nll": (-jnp.sum(target_logps), count),
            "accuracy": (jnp.sum((chosen_logps > rejected_logps).astype(jnp.float32)), count),
            "logps_chosen": (jnp.sum(chosen_logps), count),
            "logps_rejected": (jnp.sum(rejected_logps), count),
            "logps_margin": (jnp.sum(chosen_logps - rejected_logps), count),
        }

    return loss_fn
