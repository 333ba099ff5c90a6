"""The offline training loop shared by SFT, reward models and the other fixed-dataset methods: optimizer, sharded
train state, resume from the latest checkpoint, steps over deterministic batches, metrics and checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np
from tqdm import tqdm

from rlaif_jax import preemption, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.checkpoints.orbax_state import CheckpointManager
from rlaif_jax.data import batching
from rlaif_jax.models import lora
from rlaif_jax.models.loading import LanguageModel, abstract_params
from rlaif_jax.train.degenerate import DegenerateBatchWarnings
from rlaif_jax.train.optimizer import make_optimizer, make_schedule
from rlaif_jax.train.step import (
    FROZEN_PARAMS,
    checkpointed,
    init_train_state,
    make_train_step,
    train_state_shardings,
)


class NonFiniteLossError(RuntimeError):
    """Raised when more than `config.train.max_nonfinite_steps` steps had a non-finite loss or gradient."""


def check_nonfinite(nonfinite_steps: float, limit: int, step: int, first_step: int | None = None) -> None:
    """Raises NonFiniteLossError once more than `limit` steps were skipped as non-finite, naming the first
    non-finite step (`first_step`, when known) and the step it was found at (`step`)."""
    if nonfinite_steps > limit:
        first = f"step {first_step} was the first non-finite one since the run (re)started; " if first_step else ""
        raise NonFiniteLossError(
            f"step {step}: {first}{int(nonfinite_steps)} steps so far had a non-finite loss or gradient "
            f"(allowed: config.train.max_nonfinite_steps={limit})"
        )


def _check_degenerate(degenerate: DegenerateBatchWarnings, since_log: list) -> None:
    """Fetches the (step, finite, loss count) scalars of the steps since the last log and warns of degenerate ones."""
    if since_log:
        flags = jax.device_get([(finite, count) for _, finite, count in since_log])
        degenerate.check_steps([step for step, _, _ in since_log], *zip(*flags))


def _train_on_arrays(
    *,
    state: dict,
    train_step: Callable,
    arrays: dict[str, np.ndarray],
    config,
    workdir: str,
    checkpoints: CheckpointManager,
    start_step: int,
    stop_step: int,
    schedule: Callable,
    mesh,
    rules,
    desc: str,
    stop: preemption.StopOnSignal | None = None,
) -> tuple[dict, dict]:
    """Steps `start_step` .. `stop_step` over `arrays` (rows `[num_examples, ...]`), batch of step t chosen by
    `batching.batch_indices(seed=config.data.seed)`; logs every `config.train.log_every` steps (tokens/s counted
    from the `*attention_mask` arrays), checkpoints every `config.checkpoint.every_steps` and at the end.
    After a stop signal (`stop`) it checkpoints the step just finished and raises `preemption.Preempted`.
    Returns (state, last logged metrics)."""
    train = config.train
    num_examples = len(next(iter(arrays.values())))
    shardings = {
        name: sharding.batch_sharding(mesh, (train.batch_size, *a.shape[1:]), rules) for name, a in arrays.items()
    }
    # Tokens per example (all attention masks): the logged tokens/s counts them without gathering any batch.
    row_tokens = sum(
        (
            arrays[name].reshape(num_examples, -1).sum(axis=1)
            for name in arrays
            if name.endswith(("attention_mask", "target_mask"))
        ),
        np.zeros(num_examples, np.int64),
    )
    rng = jax.random.key(config.seed)
    last_metrics: dict = {}
    degenerate = DegenerateBatchWarnings()
    since_log = []  # (step, finite, count) device scalars of the steps since the last log: fetched at the log
    with run_dir.MetricsWriter(workdir, resume_step=start_step) as metrics_writer:
        tokens_since_log, log_start = 0, time.perf_counter()
        for step in tqdm(range(start_step, stop_step), initial=start_step, total=stop_step, desc=desc, unit="step"):
            indices = batching.batch_indices(num_examples, train.batch_size, step, config.data.seed)
            batch = batching.device_batch(arrays, indices, shardings)
            state, metrics = train_step(state, batch, rng)
            tokens_since_log += int(row_tokens[indices].sum())
            done = step + 1
            since_log.append((done, metrics["finite"], metrics["loss_count"]))
            if done % train.log_every == 0 or done == stop_step:
                _check_degenerate(degenerate, since_log)
                since_log = []
                last_metrics = {name: float(value) for name, value in jax.device_get(metrics).items()}
                elapsed = time.perf_counter() - log_start
                last_metrics.update(tokens_per_s=tokens_since_log / elapsed, learning_rate=float(schedule(step)))
                metrics_writer.write(done, last_metrics)
                tokens_since_log, log_start = 0, time.perf_counter()
                check_nonfinite(
                    last_metrics["nonfinite_steps"], train.max_nonfinite_steps, done, degenerate.first.get("nonfinite")
                )
            signalled = done < stop_step and preemption.stop_requested(stop)
            if done % config.checkpoint.every_steps == 0 or done == stop_step or signalled:
                checkpoints.save(done, checkpointed(state))
            if signalled:
                _check_degenerate(degenerate, since_log)  # the steps after the last log line
                checkpoints.wait_until_finished()
                raise preemption.Preempted(done, workdir)
    return state, last_metrics


def fit(
    *,
    lm: LanguageModel,
    loss_fn: Callable,
    arrays: dict[str, np.ndarray],
    config,
    workdir: str,
    num_steps: int,
    mesh,
    rules,
    desc: str,
) -> tuple[dict, dict, bool]:
    """Trains `lm.params` with `loss_fn` on `arrays` for `num_steps` (`config.optimizer`, `config.train`,
    `config.checkpoint`), resuming from WORKDIR/checkpoints and stopping early at `config.train.stop_at_step`.
    With LoRA (`lm.config.lora_rank`) only the adapters (and a scalar head) train and are checkpointed; the
    state's 'frozen_params' are `lm.params`' base weights themselves (`step.model_params(state)`: the whole model).

    `lm.params` are donated into the train state. SIGTERM / SIGINT stop it at the next step boundary with a
    checkpoint (`preemption.Preempted`). Returns (state, last logged metrics, finished: whether the run
    reached `num_steps`).
    """
    train = config.train
    sharding.check_batch_size(
        train.batch_size, mesh, rules, key="config.train.batch_size", accumulation_steps=train.accumulation_steps
    )
    optimizer = make_optimizer(config.optimizer, num_steps)
    trained, frozen_params = lora.split_trainable(lm.params, lm.config)
    abstract_trained, _ = lora.split_trainable(abstract_params(lm.config), lm.config)
    state_shardings = train_state_shardings(abstract_trained, optimizer, mesh, rules)
    state = jax.jit(init_train_state, static_argnums=1, out_shardings=state_shardings)(trained, optimizer)
    checkpoints = CheckpointManager(workdir, keep=config.checkpoint.keep)
    start_step = checkpoints.resume_step(num_steps)
    if start_step:
        state = checkpoints.restore(start_step, state)
    if frozen_params is not None:  # LoRA: the base weights ride beside the trained adapters, as they are
        state[FROZEN_PARAMS] = frozen_params
    train_step = make_train_step(
        loss_fn,
        optimizer,
        accumulation_steps=train.accumulation_steps,
        mesh=mesh,
        rules=rules,
        state_shardings=state_shardings,
    )
    stop_step = num_steps if train.stop_at_step <= 0 else min(train.stop_at_step, num_steps)
    try:
        with preemption.StopOnSignal() as stop:
            state, last_metrics = _train_on_arrays(
                state=state,
                train_step=train_step,
                arrays=arrays,
                config=config,
                workdir=workdir,
                checkpoints=checkpoints,
                start_step=start_step,
                stop_step=stop_step,
                schedule=make_schedule(config.optimizer, num_steps),
                mesh=mesh,
                rules=rules,
                desc=desc,
                stop=stop,
            )
    finally:
        checkpoints.close()  # finishes a save in flight, also when a step raised
    return state, last_metrics, stop_step == num_steps
