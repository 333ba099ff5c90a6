"""`make_train_step`: the one jit-compiled update that every method's loss plugs into.

A loss is `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)`: `loss_sum` is summed (not averaged) over
its examples or tokens, and every metric is a `(sum, count)` pair, with `metrics['loss'] = (loss_sum, count)`.
Carrying sums and counts makes the step exact whatever the mesh or the gradient accumulation: the gradient is
`d(sum of loss_sum over micro-batches) / (sum of counts)`, and each reported metric is `sum / count`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from rlaif_jax import sharding
from rlaif_jax.models import lora

LossFn = Callable[[Any, Any, jax.Array, Any], tuple[jax.Array, dict[str, tuple[jax.Array, jax.Array]]]]
# {'step': int32 [], 'params', 'opt_state', 'nonfinite_steps': int32 []}, and with LoRA 'frozen_params'.
TrainState = dict[str, Any]
# The base weights of LoRA training: the loss sees `lora.combine(frozen_params, params)`, but they are neither
# differentiated, updated, donated nor checkpointed (`checkpointed`), and never copied.
FROZEN_PARAMS = "frozen_params"


def model_params(state: TrainState) -> Any:
    """The models' whole params: the trained `params`, with LoRA's frozen base weights merged back in."""
    return lora.combine(state.get(FROZEN_PARAMS), state["params"])


def checkpointed(state: TrainState) -> TrainState:
    """What a checkpoint holds: the state without the frozen base weights (they come from the model's checkpoint)."""
    return {key: value for key, value in state.items() if key != FROZEN_PARAMS}


def init_train_state(params: Any, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh train state: step 0, the optimizer's initial state, no non-finite steps seen."""
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": optimizer.init(params),
        "nonfinite_steps": jnp.zeros((), jnp.int32),
    }


def train_state_shardings(
    boxed_abstract_params: Any, optimizer, mesh, rules, boxed_abstract_frozen: Any | None = None
) -> TrainState:
    """Shardings of the train state: parameters and their optimizer moments follow the params' logical axes; so do
    LoRA's frozen base weights (`boxed_abstract_frozen`, an entry only when given)."""
    replicated = NamedSharding(mesh, PartitionSpec())
    abstract_opt_state = jax.eval_shape(optimizer.init, boxed_abstract_params)
    shardings = {
        "step": replicated,
        "params": sharding.tree_shardings(boxed_abstract_params, mesh, rules),
        "opt_state": sharding.tree_shardings(abstract_opt_state, mesh, rules),
        "nonfinite_steps": replicated,
    }
    if boxed_abstract_frozen is not None:
        shardings[FROZEN_PARAMS] = sharding.tree_shardings(boxed_abstract_frozen, mesh, rules)
    return shardings


def _split_micro_batches(batch: Any, accumulation_steps: int) -> Any:
    """[batch, ...] -> [accumulation_steps, batch / accumulation_steps, ...], micro-batch k = rows k, k + A, ...
    (strided, so a batch sharded in contiguous blocks keeps every micro-batch spread over all devices)."""

    def split(x):
        if x.shape[0] % accumulation_steps:
            raise ValueError(f"batch size {x.shape[0]} is not divisible by accumulation_steps={accumulation_steps}")
        return x.reshape(x.shape[0] // accumulation_steps, accumulation_steps, *x.shape[1:]).swapaxes(0, 1)

    return jax.tree.map(split, batch)


def _tree_add(a, b):
    return jax.tree.map(lambda x, y: x + y.astype(x.dtype), a, b)


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    accumulation_steps: int = 1,
    mesh: jax.sharding.Mesh | None = None,
    rules=None,
    state_shardings: TrainState | None = None,
    donate_state: bool = True,
) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """Builds `train_step(state, batch, rng, frozen=None) -> (new_state, metrics)`, jit-compiled.

    Args:
      loss_fn: see the module docstring. `frozen` (reference policy, reward model, ...) reaches it untouched and is
        never differentiated or updated.
      optimizer: an optax transformation (clipping and schedules live in it; see `train.optimizer`).
      accumulation_steps: micro-batches per step; the batch's leading dim must divide by it.
      mesh, rules, state_shardings: with a mesh, the state keeps `state_shardings` and the batch is split over the
        `activation_batch` mesh axes.
    Returns:
      train_step (and `train_step.lower(state, batch, rng, frozen)`, the jit's lowering under the mesh, which takes
      `jax.ShapeDtypeStruct`s for compile-only planning). `rng` is the run's base key; step t uses
      `fold_in(rng, t)` (micro-batch k: `fold_in(that, k)`), so a resumed run draws the same numbers. A step whose
      loss or gradient is not finite, or whose batch has no counted element (every example truncated or masked),
      leaves params and optimizer state unchanged; the non-finite ones are counted in `state['nonfinite_steps']`.
      metrics: each loss metric as sum / count, plus 'grad_norm', 'applied' (1.0 if the update was applied),
      'finite' (1.0 if loss and gradient were finite), 'nonfinite_steps'.
    """

    def micro_step(params, frozen_params, micro_batch, rng, frozen):
        def loss_of_trained(trained):
            return loss_fn(lora.combine(frozen_params, trained), micro_batch, rng, frozen)

        (loss_sum, metrics), grads = jax.value_and_grad(loss_of_trained, has_aux=True)(params)
        del loss_sum
        grads = jax.tree.map(lambda g: g.astype(jnp.float32), grads)
        metrics = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), metrics)
        return grads, metrics

    def train_step(state, frozen_params, batch, rng, frozen=None):
        params = state["params"]
        step_rng = jax.random.fold_in(rng, state["step"])
        if accumulation_steps == 1:
            grads, metrics = micro_step(params, frozen_params, batch, step_rng, frozen)
        else:
            micro_batches = _split_micro_batches(batch, accumulation_steps)
            first = jax.tree.map(lambda x: x[0], micro_batches)
            zero_grads, zero_metrics = jax.tree.map(
                jnp.zeros_like, jax.eval_shape(micro_step, params, frozen_params, first, step_rng, frozen)
            )

            def accumulate(carry, inputs):
                index, micro_batch = inputs
                micro_rng = jax.random.fold_in(step_rng, index)
                grads, metrics = micro_step(params, frozen_params, micro_batch, micro_rng, frozen)
                return (_tree_add(carry[0], grads), _tree_add(carry[1], metrics)), None

            indices = jnp.arange(accumulation_steps)
            (grads, metrics), _ = jax.lax.scan(accumulate, (zero_grads, zero_metrics), (indices, micro_batches))
        if "loss" not in metrics:
            raise KeyError("loss_fn metrics must include 'loss': (loss_sum, count)")
        loss_sum, count = metrics["loss"]
        grads = jax.tree.map(lambda g, p: (g / jnp.maximum(count, 1.0)).astype(p.dtype), grads, params)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss_sum) & jnp.isfinite(grad_norm)
        apply = finite & (count > 0)
        updates, new_opt_state = optimizer.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)

        def keep_if_skipped(new, old):
            return jax.tree.map(lambda n, o: jnp.where(apply, n, o), new, old)

        new_state = {
            **state,  # extra entries (e.g. an adaptive KL coefficient) ride along untouched
            "step": state["step"] + 1,
            "params": keep_if_skipped(new_params, params),
            "opt_state": keep_if_skipped(new_opt_state, state["opt_state"]),
            "nonfinite_steps": state["nonfinite_steps"] + (~finite).astype(jnp.int32),
        }
        reported = {name: total / jnp.maximum(n, 1.0) for name, (total, n) in metrics.items()}
        reported.update(
            grad_norm=grad_norm,
            applied=apply.astype(jnp.float32),
            finite=finite.astype(jnp.float32),
            nonfinite_steps=new_state["nonfinite_steps"],
            loss_count=count,
        )
        return new_state, reported

    jit_kwargs: dict[str, Any] = {"donate_argnums": (0,) if donate_state else ()}
    if mesh is not None and state_shardings is not None:
        batch_sharding = NamedSharding(mesh, PartitionSpec(sharding.batch_axes(rules)))
        trained_shardings = checkpointed(state_shardings)
        jit_kwargs.update(
            in_shardings=(trained_shardings, state_shardings.get(FROZEN_PARAMS), batch_sharding, None, None),
            out_shardings=(trained_shardings, None),
        )
    jitted = jax.jit(train_step, **jit_kwargs)

    def run(state, batch, rng, frozen=None):
        # The frozen base weights go in as their own argument, not donated, and come back as the same arrays.
        with sharding.activate(mesh, rules):
            new_state, metrics = jitted(checkpointed(state), state.get(FROZEN_PARAMS), batch, rng, frozen)
        if FROZEN_PARAMS in state:
            new_state[FROZEN_PARAMS] = state[FROZEN_PARAMS]
        return new_state, metrics

    def lower(state, batch, rng, frozen=None):  # also on jax.ShapeDtypeStructs: compile-only planning
        with sharding.activate(mesh, rules):
            return jitted.lower(checkpointed(state), state.get(FROZEN_PARAMS), batch, rng, frozen)

    run.lower = lower
    return run
