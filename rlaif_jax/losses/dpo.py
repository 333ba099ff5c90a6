"""Direct preference optimisation and its relatives on summed sequence log-probs.

DPO (Rafailov et al. 2023, eq. 7): -log σ(β·[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]).
cDPO (Mitchell 2023): label smoothing ε mixes in the flipped-label loss. IPO (Azar et al. 2023, eq. 17):
(h - 1/(2β))². Hinge (SLiC-style, Zhao et al. 2023 / RSO hinge): max(0, 1 - β·h).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
