"""config.optimizer: Adafactor (RLAIF App. G, SLiC, RSO) trains through the sharded train step on a mesh."""

import jax
import ml_collections
import numpy as np
import pytest

from rlaif_jax import models, sharding
from rlaif_jax.config_defaults import optimizer as optimizer_config
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models.loading import abstract_params
from rlaif_jax.train.optimizer import make_optimizer
from rlaif_jax.train.step import init_train_state, make_train_step, train_state_shardings

# Matrices with both dims >= 128, so Adafactor factors their second moments.
CONFIG = models.ModelConfig(
    vocab_size=256,
    hidden_size=128,
    intermediate_size=256,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=32,
    max_position_embeddings=64,
)


def _batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 16, size=(8, 16)).astype(np.int32)  # a small alphabet: learnable in a few steps
    mask = np.ones((8, 16), bool)
    return {"tokens": tokens, "attention_mask": mask, "loss_mask": mask}


def _train(mesh, num_steps, name="adafactor"):
    lm = models.init_random(CONFIG, mesh=mesh)
    optimizer = make_optimizer(optimizer_config(name=name, learning_rate=1e-2, schedule="constant"), num_steps)
    shardings = train_state_shardings(abstract_params(CONFIG), optimizer, mesh, lm.rules)
    state = jax.jit(init_train_state, static_argnums=1, out_shardings=shardings)(lm.params, optimizer)
    step = make_train_step(sft_loss_fn(lm.module), optimizer, mesh=mesh, rules=lm.rules, state_shardings=shardings)
    losses = []
    for _ in range(num_steps):
        state, metrics = step(state, _batch(), jax.random.key(0))
        losses.append(float(metrics["loss"]))
    return losses, state


def test_adafactor_factors_the_second_moments_and_learns_on_a_2x4_mesh(record_diff):
    one_device = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    mesh = sharding.make_mesh(data=2, fsdp=4, tensor=1)
    single, _ = _train(one_device, 3)
    meshed, meshed_state = _train(mesh, 20)
    assert meshed[-1] < 0.7 * meshed[0], meshed  # it learns
    gap = float(np.max(np.abs(np.array(meshed[:3]) - np.array(single)) / np.array(single)))
    record_diff("adafactor 2x4 mesh vs one device: max relative |d loss|, 3 steps", gap, 1e-5)
    assert gap <= 1e-5
    # Factored: the [vocab, embed] embedding keeps a row and a column statistic, not a full second moment (the
    # [layers, embed, heads, head_dim] attention kernels have a second-largest dim < 128: optax keeps them whole).
    moment_shapes = [leaf.shape for leaf in jax.tree.leaves(meshed_state["opt_state"])]
    assert (CONFIG.vocab_size,) in moment_shapes and (CONFIG.hidden_size,) in moment_shapes
    assert (CONFIG.vocab_size, CONFIG.hidden_size) not in moment_shapes
    moment_sizes = sum(leaf.size for leaf in jax.tree.leaves(meshed_state["opt_state"]))
    param_sizes = sum(leaf.size for leaf in jax.tree.leaves(meshed_state["params"]))
    assert moment_sizes < 0.5 * param_sizes, (moment_sizes, param_sizes)
    _, adam_state = _train(one_device, 1, name="adamw")
    assert sum(leaf.size for leaf in jax.tree.leaves(adam_state["opt_state"])) >= 2 * param_sizes


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match=r"config.optimizer.name='lion'; expected 'adamw', 'adafactor' or 'sgd'"):
        make_optimizer(ml_collections.ConfigDict(optimizer_config(name="lion")), 10)
