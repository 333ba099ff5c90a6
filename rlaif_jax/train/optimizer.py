"""Optimizers from `config.optimizer`: optax AdamW, Adafactor or SGD with warmup + decay schedules and global-norm
clipping."""

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
    """Clip by global norm (if `max_grad_norm` > 0), then AdamW, Adafactor or SGD on the schedule.

    'adafactor' (RLAIF App. G trains SFT and RM with it) is optax's: factored second moments for matrices with both
    dims >= 128 (O(rows + cols) memory), decay 0.8, update clipping at RMS 1, no momentum, and the schedule as the
    absolute step size (`multiply_by_parameter_scale=False`, like AdamW's learning rate); `weight_decay` applies.
    """
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
    elif name == "adafactor":
        core = optax.adafactor(
            schedule,
            multiply_by_parameter_scale=False,
            weight_decay_rate=optimizer_config.weight_decay or None,
        )
    elif name == "sgd":
        core = optax.sgd(schedule)
    else:
        raise ValueError(f"config.optimizer.name={name!r}; expected 'adamw', 'adafactor' or 'sgd'")
    if optimizer_config.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(optimizer_config.max_grad_norm), core)
    return core
