"""Optimizers from `config.optimizer`: optax AdamW (or SGD) with warmup + decay schedules and global-norm clipping."""

from __future__ import annotations

import optax

SCHEDULES = ("constant", "linear", "cosine")


def make_schedule(optimizer_config, num_steps: int) -> optax.Schedule:
    """Learning rate per step: linear warmup over `warmup_steps`, then constant, linear or cosine decay to
    `final_lr_fraction * learning_rate` at `num_steps`."""
    peak = optimizer_config.learning_rate
    warmup = optimizer_config.warmup_steps
    kind = optimizer_config.schedule
    if kind not in SCHEDULES:
        raise ValueError(f"config.optimizer.schedule={kind!r}; expected one of {SCHEDULES}")
    final = peak * optimizer_config.final_lr_fraction
    decay_steps = max(num_steps - warmup, 1)
    if kind == "constant":
        after = optax.constant_schedule(peak)
    elif kind == "linear":
        after = optax.linear_schedule(peak, final, decay_steps)
    else:
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=optimizer_config.final_lr_fraction)
    if warmup <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(optimizer_config, num_steps: int) -> optax.GradientTransformation:
    """Clip by global norm (if `max_grad_norm` > 0), then AdamW or SGD on the schedule."""
    schedule = make_schedule(optimizer_config, num_steps)
    name = optimizer_config.name
    if name == "adamw":
        core = optax.adamw(
            schedule,
            b1=optimizer_config.b1,
            b2=optimizer_config.b2,
            eps=optimizer_config.eps,
            weight_decay=optimizer_config.weight_decay,
        )
    elif name == "sgd":
        core = optax.sgd(schedule)
    else:
        raise ValueError(f"config.optimizer.name={name!r}; expected 'adamw' or 'sgd'")
    if optimizer_config.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(optimizer_config.max_grad_norm), core)
    return core
