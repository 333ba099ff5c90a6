"""The shared train step: invariance to accumulation and mesh, NaN guard, frozen vs trainable, degenerate batches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlaif_jax import models, sharding
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models.loading import abstract_params
from rlaif_jax.train.step import init_train_state, make_train_step, train_state_shardings

CONFIG = models.ModelConfig(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    max_position_embeddings=64,
)


def make_batch(batch_size=8, seq=12, seed=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, seq + 1, size=batch_size)  # ragged: micro-batches carry different token counts
    attention = np.arange(seq)[None, :] < lengths[:, None]
    loss_mask = attention & (np.arange(seq)[None, :] >= 3)
    tokens = np.where(attention, rng.integers(0, CONFIG.vocab_size, size=(batch_size, seq)), 0).astype(np.int32)
    return {"tokens": tokens, "attention_mask": attention, "loss_mask": loss_mask}


def run_steps(batch, *, accumulation_steps=1, mesh=None, num_steps=3, loss_fn=None, optimizer=None):
    lm = models.init_random(CONFIG, mesh=mesh)
    optimizer = optimizer or optax.adamw(1e-2)
    shardings = None if mesh is None else train_state_shardings(abstract_params(CONFIG), optimizer, mesh, lm.rules)
    state = init_train_state(lm.params, optimizer)
    if shardings is not None:
        state = jax.device_put(state, shardings)
    step = make_train_step(
        loss_fn or sft_loss_fn(lm.module),
        optimizer,
        accumulation_steps=accumulation_steps,
        mesh=mesh,
        rules=lm.rules,
        state_shardings=shardings,
    )
    losses = []
    for _ in range(num_steps):
        state, metrics = step(state, batch, jax.random.key(0))
        losses.append(float(metrics["loss"]))
    return losses, state


def test_batch_8_equals_batch_4_times_accumulation_2():
    batch = make_batch()
    plain, _ = run_steps(batch)
    accumulated, _ = run_steps(batch, accumulation_steps=2)
    eight, _ = run_steps(batch, accumulation_steps=8)
    np.testing.assert_allclose(accumulated, plain, atol=1e-5)
    np.testing.assert_allclose(eight, plain, atol=1e-5)
    # Parameters after SGD steps (Adam would magnify float noise in near-zero gradients) agree too.
    _, plain_state = run_steps(batch, optimizer=optax.sgd(0.5))
    _, accumulated_state = run_steps(batch, accumulation_steps=2, optimizer=optax.sgd(0.5))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), plain_state["params"], accumulated_state["params"]
    )


def test_fifty_steps_invariant_to_accumulation_and_data_parallel():
    """RELIABILITY 11: batch 8 x accum 1 vs batch 1 x accum 8 vs 2-way data parallel, loss within 1e-4 over 50 steps."""
    batch = make_batch()
    plain, _ = run_steps(batch, num_steps=50)
    accumulated, _ = run_steps(batch, accumulation_steps=8, num_steps=50)
    data_parallel, _ = run_steps(
        batch, mesh=sharding.make_mesh(data=2, fsdp=1, tensor=1, devices=jax.devices()[:2]), num_steps=50
    )
    assert plain[-1] < plain[0] - 1.0  # it does learn
    np.testing.assert_allclose(accumulated, plain, atol=1e-4)
    np.testing.assert_allclose(data_parallel, plain, atol=1e-4)


def test_same_step_on_one_device_and_2x4_mesh():
    batch = make_batch()
    single_device = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    mesh = sharding.make_mesh(data=2, fsdp=1, tensor=4)
    single, single_state = run_steps(batch, mesh=single_device, optimizer=optax.sgd(0.5))
    meshed, meshed_state = run_steps(batch, mesh=mesh, optimizer=optax.sgd(0.5))
    np.testing.assert_allclose(meshed, single, rtol=1e-5)
    kernel = meshed_state["params"]["layers"]["mlp"]["gate_up_proj"]  # [layers, embed, 2, mlp]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None, "tensor")
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), single_state["params"], meshed_state["params"]
    )
    # Three Adam steps: the losses still agree.
    np.testing.assert_allclose(run_steps(batch, mesh=mesh)[0], run_steps(batch, mesh=single_device)[0], rtol=1e-5)


def test_nonfinite_loss_applies_no_update_and_is_counted():
    lm = models.init_random(CONFIG)

    def nan_loss(params, batch, rng, frozen):
        loss_sum, metrics = sft_loss_fn(lm.module)(params, batch, rng, frozen)
        return loss_sum * jnp.nan, {"loss": (loss_sum * jnp.nan, metrics["loss"][1])}

    _, state = run_steps(make_batch(), loss_fn=nan_loss, num_steps=2)
    jax.tree.map(np.testing.assert_array_equal, state["params"], lm.params)
    assert int(state["nonfinite_steps"]) == 2 and int(state["step"]) == 2


def test_nonfinite_gradient_or_reward_applies_no_update():
    lm = models.init_random(CONFIG)

    def nan_gradient(params, batch, rng, frozen):
        loss_sum, metrics = sft_loss_fn(lm.module)(params, batch, rng, frozen)
        # Finite value, NaN gradient: d sqrt(x)/dx at 0 is inf, times 0.
        poison = 0.0 * jnp.sum(jnp.sqrt(params["embedding"] - params["embedding"]))
        return loss_sum + poison, {"loss": (loss_sum + poison, metrics["loss"][1])}

    def nan_reward(params, batch, rng, frozen):
        loss_sum, metrics = sft_loss_fn(lm.module)(params, batch, rng, frozen)
        weighted = loss_sum * jnp.asarray(batch["reward"]).mean()
        return weighted, {"loss": (weighted, metrics["loss"][1])}

    for loss_fn, batch in ((nan_gradient, make_batch()), (nan_reward, {**make_batch(), "reward": np.full(8, np.nan)})):
        losses, state = run_steps(batch, loss_fn=loss_fn, num_steps=1)
        jax.tree.map(np.testing.assert_array_equal, state["params"], models.init_random(CONFIG).params)
        assert int(state["nonfinite_steps"]) == 1


def test_all_masked_batch_changes_nothing():
    batch = make_batch()
    batch["loss_mask"] = np.zeros_like(batch["loss_mask"])
    losses, state = run_steps(batch, num_steps=2)
    assert losses == [0.0, 0.0]
    jax.tree.map(np.testing.assert_array_equal, state["params"], models.init_random(CONFIG).params)
    assert int(state["nonfinite_steps"]) == 0


def test_frozen_never_changes_and_every_trainable_leaf_does():
    policy = models.init_random(CONFIG, seed=0)
    reference = models.init_random(CONFIG, seed=1)
    frozen_before = jax.tree.map(np.array, reference.params)
    policy_before = jax.tree.map(np.array, policy.params)  # the step donates the state's buffers

    def loss_fn(params, batch, rng, frozen):
        # A KL-like pull towards a frozen reference: gradients reach only `params`.
        logits = policy.module.apply({"params": params}, batch["tokens"])
        ref_logits = policy.module.apply({"params": frozen}, batch["tokens"])
        diff = jnp.sum((jax.nn.log_softmax(logits) - jax.nn.log_softmax(ref_logits)) ** 2)
        return diff, {"loss": (diff, jnp.float32(1.0))}

    optimizer = optax.sgd(1e-1)
    state = init_train_state(policy.params, optimizer)
    step = make_train_step(loss_fn, optimizer)
    state, _ = step(state, make_batch(), jax.random.key(0), reference.params)
    jax.tree.map(np.testing.assert_array_equal, reference.params, frozen_before)
    changed = jax.tree.map(lambda new, old: bool(np.any(np.asarray(new) != old)), state["params"], policy_before)
    assert all(jax.tree.leaves(changed)), changed


def test_step_rng_is_fold_in_of_step():
    def loss_fn(params, batch, rng, frozen):
        draw = jax.random.uniform(rng)
        loss = jnp.sum(params["embedding"]) * 0.0
        return loss, {"loss": (loss, jnp.float32(1.0)), "draw": (draw, jnp.float32(1.0))}

    lm = models.init_random(CONFIG)
    optimizer = optax.sgd(0.0)
    step = make_train_step(loss_fn, optimizer, donate_state=False)
    state = init_train_state(lm.params, optimizer)
    _, first = step(state, make_batch(), jax.random.key(7))
    state = dict(state, step=jnp.int32(5))
    _, fifth = step(state, make_batch(), jax.random.key(7))
    assert float(first["draw"]) == float(jax.random.uniform(jax.random.fold_in(jax.random.key(7), 0)))
    assert float(fifth["draw"]) == float(jax.random.uniform(jax.random.fold_in(jax.random.key(7), 5)))


def test_nonfinite_limit_error_names_the_step():
    import pytest

    from rlaif_jax.train.loop import NonFiniteLossError, check_nonfinite

    check_nonfinite(3.0, 3, step=12)
    with pytest.raises(NonFiniteLossError, match=r"step 12: 4 steps so far had a non-finite.*max_nonfinite_steps=3"):
        check_nonfinite(4.0, 3, step=12)
