"""The `sft` job: supervised fine-tuning with checkpoints, resumable by re-running the same command."""

from __future__ import annotations

import logging
import os

import jax

from rlaif_jax import models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.checkpoints.orbax_state import CheckpointManager
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.sft import TokenizedExamples, tokenize_prompt_response
from rlaif_jax.data.toy import toy_rows
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models.loading import abstract_params
from rlaif_jax.pipelines.model_setup import build_mesh, build_model
from rlaif_jax.train.loop import train_on_arrays
from rlaif_jax.train.optimizer import make_optimizer, make_schedule
from rlaif_jax.train.step import init_train_state, make_train_step, train_state_shardings


def load_sft_examples(data_config, tokenizer) -> TokenizedExamples:
    """`config.data.train_file` (JSONL with prompt/response columns) or, if it is 'toy', the toy letters task."""
    if data_config.train_file == "toy":
        rows = toy_rows(data_config.toy_num_rows, seed=data_config.seed, noise=data_config.toy_noise)
    else:
        rows = read_jsonl(data_config.train_file, (data_config.prompt_field, data_config.response_field))
    return tokenize_prompt_response(
        rows,
        tokenizer,
        max_length=data_config.max_length,
        use_chat_template=data_config.use_chat_template,
        prompt_field=data_config.prompt_field,
        response_field=data_config.response_field,
    )


def run(config, workdir: str) -> dict:
    """Trains `config.model` on `config.data` for `config.train.num_steps`; returns the last logged metrics."""
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    lm = build_model(config.model, mesh, rules)
    examples = load_sft_examples(config.data, lm.tokenizer)
    train = config.train
    optimizer = make_optimizer(config.optimizer, train.num_steps)
    schedule = make_schedule(config.optimizer, train.num_steps)
    state_shardings = train_state_shardings(abstract_params(lm.config), optimizer, mesh, rules)
    state = jax.jit(init_train_state, static_argnums=1, out_shardings=state_shardings)(lm.params, optimizer)
    del lm.params  # the train state holds them now

    checkpoints = CheckpointManager(workdir, keep=config.checkpoint.keep)
    start_step = checkpoints.latest_step() or 0
    if start_step:
        state = checkpoints.restore(start_step, state)
        logging.info("resumed from %s at step %d", checkpoints.directory, start_step)
    train_step = make_train_step(
        sft_loss_fn(lm.module),
        optimizer,
        accumulation_steps=train.accumulation_steps,
        mesh=mesh,
        rules=rules,
        state_shardings=state_shardings,
    )
    stop_step = train.num_steps if train.stop_at_step <= 0 else min(train.stop_at_step, train.num_steps)
    state, last_metrics = train_on_arrays(
        state=state,
        train_step=train_step,
        arrays=examples.arrays,
        config=config,
        workdir=workdir,
        checkpoints=checkpoints,
        start_step=start_step,
        stop_step=stop_step,
        schedule=schedule,
        mesh=mesh,
        rules=rules,
        desc="sft",
    )
    checkpoints.close()
    if config.export_hf and stop_step == train.num_steps:
        models.save_hf(lm.replace(params=state["params"]), os.path.join(workdir, "hf_model"))
    return last_metrics
