"""A job's train step built from shapes alone: the model, loss, optimizer and sharded state of a config, with every
array a `jax.ShapeDtypeStruct` (nothing allocated). `compile_stats` lowers and compiles it and reads XLA's memory
and cost analyses: the per-device bytes and FLOPs of one step at a given batch and sequence length, on any mesh,
before a single parameter exists (`experiments/aot_memory.py`). `materialize` turns a plan into real random arrays
to run and time the same step on a device (`experiments/device_profile.py`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from rlaif_jax import sharding
from rlaif_jax.models import architectures, loading, lora
from rlaif_jax.models.config import ModelConfig, from_hf_dict
from rlaif_jax.models.setup import runtime_options
from rlaif_jax.train.optimizer import make_optimizer
from rlaif_jax.train.step import FROZEN_PARAMS, init_train_state, make_train_step, train_state_shardings

JOBS = ("sft", "preference", "reward_model", "online_rl")


@dataclasses.dataclass
class StepPlan:
    """A train step and the abstract (ShapeDtypeStruct, sharded) arguments it is called with."""

    job: str
    model_config: ModelConfig
    mesh: jax.sharding.Mesh
    optimizer: Any
    train_step: Callable
    state_shardings: Any
    state: Any  # {'step', 'params', 'opt_state', 'nonfinite_steps', ...} of ShapeDtypeStructs
    batch: dict[str, jax.ShapeDtypeStruct]
    frozen: Any  # the reference policy's params (online RL), else None
    tokens_per_step: int  # sequence positions one step trains on (batch x length, both sequences of a pair)
    num_params: int  # trainable parameters
    model_flops: float  # training FLOPs of one step as MFU counts them (`model_flops_per_token`), all devices


def model_flops_per_token(config: ModelConfig, seq_len: int, *, lm_head: bool = True) -> float:
    """Training FLOPs per token of one model, as MFU counts them (PaLM, Chowdhery et al. 2022, App. B):
    6 x the parameters a token is multiplied by (the layers, and the LM head when `lm_head`; not the embedding
    lookup) + 12 x layers x heads x head_dim x `seq_len` for attention. Rematerialisation is not counted."""
    per_layer = (config.num_params - config.vocab_size * config.hidden_size * (1 + (not config.tie_word_embeddings))
                 - config.hidden_size) / config.num_layers  # fmt: skip
    matmul_params = config.num_layers * per_layer + (config.vocab_size * config.hidden_size if lm_head else 0)
    return 6.0 * matmul_params + 12.0 * config.num_layers * config.num_heads * config.head_dim * seq_len


@dataclasses.dataclass
class _JobParts:
    boxed_params: Any  # boxed abstract params of the train state
    optimizer: Any
    loss_fn: Callable
    shapes: dict[str, tuple[tuple[int, ...], Any]]  # batch array name -> (shape, dtype)
    tokens_per_step: int
    frozen_boxed: Any = None  # boxed abstract params passed as `frozen`
    extra_state: dict = dataclasses.field(default_factory=dict)  # name -> ShapeDtypeStruct (replicated scalars)


def model_config_of(config) -> ModelConfig:
    """The ModelConfig `config.model` names, read without weights: 'random:ARCH', 'tiny' (its `tiny` block), or an
    HF directory's config.json; with the block's dtype / param_dtype / remat / attention / vocab chunking."""
    options = {**runtime_options(config.model), **lora.config_fields(config.model.get("lora"))}
    name = config.model.name
    if name == "tiny":
        return ModelConfig(**dict(config.model.tiny), **options)
    if architectures.is_random(name):
        return architectures.random_config(name, **options)
    path = os.path.join(os.path.expanduser(name), "config.json")
    if not os.path.exists(path):
        raise ValueError(
            f"config.model.name={name!r}: compile-only planning reads an architecture from 'random:ARCH' "
            f"({sorted(architectures.ARCHITECTURES)}), 'tiny' or an HF directory's config.json"
        )
    with open(path) as f:
        return from_hf_dict(json.load(f), **options)


def _pair_shapes(batch_size: int, seq_len: int, names) -> dict:
    return {
        f"{side}_{name}": ((batch_size, seq_len), dtype) for side in ("chosen", "rejected") for name, dtype in names
    }


_TOKENS = (("tokens", jnp.int32), ("attention_mask", jnp.bool_))


def _sft_parts(config, model_config, batch_size, seq_len) -> _JobParts:
    from rlaif_jax.losses import sft

    sequence = (batch_size, seq_len)
    return _JobParts(
        loading.abstract_params(model_config),
        make_optimizer(config.optimizer, config.train.num_steps or 1),
        sft.sft_loss_fn(loading.Transformer(model_config)),
        {"tokens": (sequence, jnp.int32), "attention_mask": (sequence, jnp.bool_), "loss_mask": (sequence, jnp.bool_)},
        batch_size * seq_len,
    )


def _preference_parts(config, model_config, batch_size, seq_len) -> _JobParts:
    from rlaif_jax.pipelines.preference import make_loss_fn

    soft = config.data.get("labels", "hard") == "soft"
    shapes = _pair_shapes(batch_size, seq_len, _TOKENS + (("loss_mask", jnp.bool_),))
    shapes.update(
        reference_chosen_logps=((batch_size,), jnp.float32), reference_rejected_logps=((batch_size,), jnp.float32)
    )
    if soft:
        shapes["preference"] = ((batch_size,), jnp.float32)
    return _JobParts(
        loading.abstract_params(model_config),
        make_optimizer(config.optimizer, config.train.num_steps or 1),
        make_loss_fn(loading.Transformer(model_config), config.loss, soft_labels=soft),
        shapes,
        2 * batch_size * seq_len,
    )


def _reward_model_parts(config, model_config, batch_size, seq_len) -> _JobParts:
    from rlaif_jax.losses import reward_model as rm_losses

    loss_type = config.loss.type
    if loss_type == "ranking":
        raise ValueError("config.loss.type='ranking': compile-only planning covers the pairwise reward-model losses")
    model_config = model_config.replace(scalar_head=True)
    shapes = _pair_shapes(batch_size, seq_len, _TOKENS)
    shapes["margin" if loss_type == "bradley_terry" else "preference"] = ((batch_size,), jnp.float32)
    return _JobParts(
        loading.abstract_params(model_config),
        make_optimizer(config.optimizer, config.train.num_steps or 1),
        rm_losses.pairwise_reward_loss_fn(loading.Transformer(model_config), loss_type=loss_type),
        shapes,
        2 * batch_size * seq_len,
    )


def _online_rl_parts(config, model_config, batch_size, seq_len, prompt_len) -> _JobParts:
    """The RL minibatch step: policy (+ value model for PPO / REINFORCE) trained, the reference frozen."""
    from rlaif_jax.train import rl_loop

    rl = config.rl
    prompt_len = prompt_len or seq_len // 2
    value_config = model_config.replace(scalar_head=True)
    boxed = {"policy": loading.abstract_params(model_config)}
    if rl.algorithm not in rl_loop.GROUP_ALGORITHMS:
        boxed["value"] = loading.abstract_params(value_config)
    _, group = rl_loop.prefix_group_sizes(rl)
    loss_fn = rl_loop.make_loss_fn(
        rl, loading.Transformer(model_config), loading.Transformer(value_config), prompt_len,
        group if batch_size % group == 0 else 1,
    )  # fmt: skip
    sequence, response, rows = (batch_size, seq_len), (batch_size, seq_len - prompt_len), (batch_size,)
    per_token = rl.algorithm == "ppo" or (rl.algorithm == "reinforce" and rl.baseline == "per_token")
    shapes = {
        "tokens": (sequence, jnp.int32),
        "attention_mask": (sequence, jnp.bool_),
        "response_mask": (response, jnp.bool_),
        "old_logprobs": (response, jnp.float32),
        "advantages": (response if per_token else rows, jnp.float32),
        "returns": (response if rl.algorithm == "ppo" else rows, jnp.float32),
    }
    if rl.algorithm == "ppo":
        shapes["old_values"] = (response, jnp.float32)
        if rl.ptx_coef > 0:
            shapes.update(
                ptx_tokens=(sequence, jnp.int32),
                ptx_attention_mask=(sequence, jnp.bool_),
                ptx_loss_mask=(sequence, jnp.bool_),
            )
    if rl.algorithm == "grpo":
        shapes["ref_logprobs"] = (response, jnp.float32)
    return _JobParts(
        boxed,
        rl_loop.make_rl_optimizer(config, config.train.num_steps),
        loss_fn,
        shapes,
        batch_size * seq_len,
        frozen_boxed=boxed["policy"],
        extra_state={"kl_coef": jax.ShapeDtypeStruct((), jnp.float32)},
    )


def plan_train_step(config, mesh, *, batch_size: int, seq_len: int, prompt_len: int | None = None) -> StepPlan:
    """The train step of `config.job` ('sft', 'preference' (DPO family), 'reward_model', 'online_rl') on `mesh`,
    for `batch_size` sequences (pairs for preference / reward_model) of `seq_len` tokens; online RL splits them
    into `prompt_len` (default half) prompt and the rest response tokens, with its value model (PPO, REINFORCE) and
    the frozen reference policy. Nothing is allocated."""
    job = config.job
    if job not in JOBS:
        raise ValueError(f"config.job={job!r}: compile-only planning knows {JOBS}")
    rules = sharding.normalize_rules(config.mesh.rules)
    accumulation = 1 if job == "online_rl" else config.train.get("accumulation_steps", 1)
    sharding.check_batch_size(batch_size, mesh, rules, key="--batch_size", accumulation_steps=accumulation)
    model_config = model_config_of(config)
    if job == "online_rl":
        parts = _online_rl_parts(config, model_config, batch_size, seq_len, prompt_len)
    else:
        build = {"sft": _sft_parts, "preference": _preference_parts, "reward_model": _reward_model_parts}[job]
        parts = build(config, model_config, batch_size, seq_len)
    # LoRA: the state trains the adapters; the base weights ride beside them as 'frozen_params'.
    if job == "online_rl":
        from rlaif_jax.train import rl_loop

        model_configs = {"policy": model_config, "value": model_config.replace(scalar_head=True)}
        trained_boxed, frozen_params_boxed = rl_loop.split_trainable_models(parts.boxed_params, model_configs)
    else:
        trained_boxed, frozen_params_boxed = lora.split_trainable(parts.boxed_params, model_config)
    state_shardings = train_state_shardings(trained_boxed, parts.optimizer, mesh, rules, frozen_params_boxed)
    replicated = NamedSharding(mesh, PartitionSpec())
    state_shardings.update({name: replicated for name in parts.extra_state})
    abstract_state = {
        "step": jax.ShapeDtypeStruct((), jnp.int32),
        "params": nn.unbox(trained_boxed),
        "opt_state": nn.unbox(jax.eval_shape(parts.optimizer.init, trained_boxed)),
        "nonfinite_steps": jax.ShapeDtypeStruct((), jnp.int32),
        **parts.extra_state,
    }
    if frozen_params_boxed is not None:
        abstract_state[FROZEN_PARAMS] = nn.unbox(frozen_params_boxed)
    frozen = None
    if parts.frozen_boxed is not None:
        frozen = _abstract(nn.unbox(parts.frozen_boxed), sharding.tree_shardings(parts.frozen_boxed, mesh, rules))
    train_step = make_train_step(
        parts.loss_fn,
        parts.optimizer,
        accumulation_steps=accumulation,
        mesh=mesh,
        rules=rules,
        state_shardings=state_shardings,
    )
    return StepPlan(
        job=job,
        model_config=model_config,
        mesh=mesh,
        optimizer=parts.optimizer,
        train_step=train_step,
        state_shardings=state_shardings,
        state=_abstract(abstract_state, state_shardings),
        batch=_batch(parts.shapes, mesh, rules),
        frozen=frozen,
        tokens_per_step=parts.tokens_per_step,
        num_params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(parts.boxed_params))),
        model_flops=parts.tokens_per_step
        * (
            model_flops_per_token(model_config, seq_len, lm_head=job != "reward_model")
            + (model_flops_per_token(model_config, seq_len, lm_head=False) if "value" in parts.boxed_params else 0.0)
        ),
    )


def _abstract(tree_shapes: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree_shapes, shardings)


def _batch(shapes: dict[str, tuple[tuple[int, ...], Any]], mesh, rules) -> dict[str, jax.ShapeDtypeStruct]:
    return {
        name: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(mesh, shape, rules))
        for name, (shape, dtype) in shapes.items()
    }


def compile_stats(plan: StepPlan) -> dict[str, Any]:
    """Lowers and compiles `plan`'s step; XLA's per-device figures: argument / output / temp / generated-code bytes
    ('alias_bytes': outputs sharing an argument's buffer, i.e. the donated state), FLOPs and bytes accessed (XLA
    counts a scanned layer's body once, so 'flops' is far below the step's; 'model_flops' is the analytic count) and
    'collectives' (`collective_counts` of the compiled module; None where the backend cannot print it)."""
    rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=NamedSharding(plan.mesh, PartitionSpec()))
    compiled = plan.train_step.lower(plan.state, plan.batch, rng, plan.frozen).compile()
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    stats = {
        "argument_bytes": int(memory.argument_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
        "alias_bytes": int(memory.alias_size_in_bytes),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "generated_code_bytes": int(memory.generated_code_size_in_bytes),
        "flops": float((cost or {}).get("flops", float("nan"))),
        "bytes_accessed": float((cost or {}).get("bytes accessed", float("nan"))),
    }
    stats["peak_estimate_bytes"] = (
        stats["argument_bytes"] + stats["output_bytes"] - stats["alias_bytes"] + stats["temp_bytes"]
    )
    stats["model_flops"] = plan.model_flops / plan.mesh.size  # per device; XLA's 'flops' counts a loop body once
    try:
        stats["collectives"] = collective_counts(compiled.as_text())
    except jax.errors.JaxRuntimeError:  # libtpu 0.0.52 cannot print some v5p modules (an async-update RET_CHECK)
        stats["collectives"] = None
    return stats


COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


def collective_counts(hlo_text: str) -> dict[str, int]:
    """How many instructions of each collective (`COLLECTIVES`; async `-start` halves counted once) a compiled
    module's HLO text holds: in a scanned step a loop body's collectives count once, like XLA's 'flops'."""
    counts = dict.fromkeys(COLLECTIVES, 0)
    for line in hlo_text.splitlines():
        for name in COLLECTIVES:
            if f" {name}(" in line or f" {name}-start(" in line:
                counts[name] += 1
    return counts


def materialize(plan: StepPlan, seed: int = 0) -> tuple[Any, dict[str, jax.Array], Any]:
    """Real arrays of `plan`'s shapes and shardings, made on the devices in their shards: (state, batch, frozen).
    Parameters are random (normal 0.02; norm scales 1) and the optimizer state is the optimizer's own init; token
    ids are uniform over the vocabulary, masks all ones (every position real), float batch entries small and random."""
    vocab = plan.model_config.vocab_size

    def random_tree(tree, key):
        leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
        keys = jax.random.split(key, len(leaves))
        made = []
        for (path, struct), leaf_key in zip(leaves, keys):
            if jnp.issubdtype(struct.dtype, jnp.integer):
                made.append(jax.random.randint(leaf_key, struct.shape, 0, vocab, struct.dtype))
            elif struct.dtype == jnp.bool_:
                made.append(jnp.ones(struct.shape, bool))
            elif "norm" in jax.tree_util.keystr(path):
                made.append(jnp.ones(struct.shape, struct.dtype))
            else:
                made.append((0.02 * jax.random.normal(leaf_key, struct.shape, jnp.float32)).astype(struct.dtype))
        return jax.tree_util.tree_unflatten(treedef, made)

    def shardings_of(tree):
        return jax.tree.map(lambda struct: struct.sharding, tree)

    def init_state(key):
        state = init_train_state(random_tree(plan.state["params"], key), plan.optimizer)
        if FROZEN_PARAMS in plan.state:
            state[FROZEN_PARAMS] = random_tree(plan.state[FROZEN_PARAMS], jax.random.fold_in(key, 1))
        return {**state, **{name: jnp.zeros(v.shape, v.dtype) for name, v in plan.state.items() if name not in state}}

    keys = jax.random.split(jax.random.key(seed), 3)
    state = jax.jit(init_state, out_shardings=plan.state_shardings)(keys[0])
    batch = jax.jit(lambda key: random_tree(plan.batch, key), out_shardings=shardings_of(plan.batch))(keys[1])
    frozen = None
    if plan.frozen is not None:
        frozen = jax.jit(lambda key: random_tree(plan.frozen, key), out_shardings=shardings_of(plan.frozen))(keys[2])
    return state, batch, frozen
