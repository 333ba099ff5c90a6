"""models/attention.py: `jax.nn.dot_product_attention` (XLA on CPU) equals the einsum attention the model used before
(float32, 1e-5), with the causal key mask of a forward pass and the full mask of a KV-cache step; splash attention
(TPU Pallas, run here in interpret mode) equals it too, values and gradients; 'auto' picks per backend."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from rlaif_jax import sharding
from rlaif_jax.models import attention


def _qkv(seq=128, keys=None, seed=0, batch=2, heads=4, kv_heads=2, head_dim=16):
    rng = np.random.default_rng(seed)
    keys = keys or seq
    q = jnp.asarray(rng.normal(size=(batch, seq, heads, head_dim)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(batch, keys, kv_heads, head_dim)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(batch, keys, kv_heads, head_dim)), jnp.float32)
    valid = np.ones((batch, keys), bool)
    valid[0, : keys // 5] = False  # left padding
    return q, k, v, valid


def test_xla_forward_pass_equals_the_einsum_reference(record_diff):
    q, k, v, valid = _qkv()
    key_mask = jnp.asarray(valid)[:, None, None, :]
    got = attention.attend(q, k, v, key_mask, causal=True, implementation="xla")
    want = attention.reference_attention(q, k, v, key_mask, causal=True)
    diff = record_diff("attention xla vs einsum max|Δ| (real rows)", jnp.max(jnp.abs((got - want)[valid])), 1e-5)
    assert diff <= 1e-5


def test_sliding_window_equals_the_banded_einsum_and_differs_from_full_attention(record_diff):
    q, k, v, valid = _qkv(seq=64)
    key_mask = jnp.asarray(valid)[:, None, None, :]
    got = attention.attend(q, k, v, key_mask, causal=True, implementation="xla", window=8)
    want = attention.reference_attention(q, k, v, key_mask, causal=True, window=8)
    diff = record_diff(
        "windowed attention xla vs einsum max|Δ| (real rows)", jnp.max(jnp.abs((got - want)[valid])), 1e-5
    )
    assert diff <= 1e-5
    full = attention.reference_attention(q, k, v, key_mask, causal=True)
    assert jnp.max(jnp.abs((full - want)[valid])) > 1e-2
    # Query i sees exactly keys i-7 .. i: one-hot values read back which keys were averaged.
    eye = jnp.broadcast_to(jnp.eye(64, 16)[None, :, None, :], k.shape)
    averaged = attention.reference_attention(q, k, eye, jnp.ones((2, 1, 1, 64), bool), causal=True, window=8)
    assert bool(jnp.all(averaged[1, 12, 0, :5] == 0)) and bool(jnp.all(averaged[1, 12, 0, 5:13] > 0))


def test_xla_cache_step_equals_the_einsum_reference(record_diff):
    # 3 new queries at slots 5..7 of a 12-slot cache: the mask is the caller's, whole.
    q, k, v, valid = _qkv(seq=3, keys=12)
    slots = 5 + jnp.arange(3)
    mask = ((jnp.arange(12)[None, :] <= slots[:, None])[None] & jnp.asarray(valid)[:, None, :])[:, None]
    got = attention.attend(q, k, v, mask, causal=False, implementation="auto")
    want = attention.reference_attention(q, k, v, mask, causal=False)
    assert record_diff("attention cache step max|Δ|", jnp.max(jnp.abs(got - want)), 1e-5) <= 1e-5


def test_splash_attention_in_interpret_mode_matches_values_and_gradients(record_diff):
    q, k, v, valid = _qkv(seq=128)
    real = jnp.asarray(valid)[..., None, None]

    def loss(fn, q, k, v):
        return jnp.sum(jnp.where(real, fn(q, k, v), 0.0) * jnp.linspace(-1, 1, 16))

    splash = lambda q, k, v: attention._splash_attention(  # noqa: E731
        q, k, v, jnp.asarray(valid), scale=16**-0.5, interpret=True
    )
    reference = lambda q, k, v: attention.reference_attention(  # noqa: E731
        q, k, v, jnp.asarray(valid)[:, None, None, :], causal=True
    )
    got, want = splash(q, k, v), reference(q, k, v)
    assert record_diff("splash (interpret) max|Δ|", jnp.max(jnp.abs((got - want)[valid])), 1e-5) <= 1e-5
    grads = jax.grad(lambda *x: loss(splash, *x), argnums=(0, 1, 2))(q, k, v)
    expected = jax.grad(lambda *x: loss(reference, *x), argnums=(0, 1, 2))(q, k, v)
    for got_grad, want_grad in zip(grads, expected):
        np.testing.assert_allclose(got_grad, want_grad, atol=1e-5)


def test_splash_attention_on_a_mesh_runs_per_shard_and_matches_values_and_gradients(record_diff):
    """On a data=2 × fsdp=2 × tensor=2 mesh the kernel runs in a shard_map over rows and heads: no collective in the
    compiled forward or backward but the loss's scalar sum (XLA's partitioner would otherwise gather q/k/v whole onto
    every device), and the
    values and gradients equal the einsum reference's."""
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2, devices=jax.devices()[:8])
    rules = sharding.DEFAULT_RULES
    q, k, v, valid = _qkv(seq=128, batch=4)
    spec = NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None, "tensor", None))
    q, k, v = (jax.device_put(x, spec) for x in (q, k, v))
    valid_rows = jax.device_put(jnp.asarray(valid), NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None)))
    real = jnp.asarray(valid)[..., None, None]
    weights = jnp.linspace(-1, 1, 16)

    def loss(q, k, v, key_valid):
        out = attention._splash_attention(q, k, v, key_valid, scale=16**-0.5, interpret=True)
        return jnp.sum(jnp.where(real, out, 0.0) * weights), out

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
    with sharding.activate(mesh, rules):
        assert attention.splash_partition(jax.sharding.get_abstract_mesh(), q.shape, k.shape) == (
            ("data", "fsdp"),
            "tensor",
        )
        compiled_text = step.lower(q, k, v, valid_rows).compile().as_text()
        (_, got), grads = step(q, k, v, valid_rows)
    for collective in ("all-gather", "all-to-all", "collective-permute"):
        assert collective not in compiled_text
    reductions = [line for line in compiled_text.splitlines() if " all-reduce(" in line]
    assert all(" = f32[] all-reduce(" in line for line in reductions)  # only the loss's scalar sum
    assert got.sharding.spec == spec.spec  # the output stays split like the inputs
    reference = lambda q, k, v: attention.reference_attention(  # noqa: E731
        q, k, v, jnp.asarray(valid)[:, None, None, :], causal=True
    )
    want = reference(q, k, v)
    assert record_diff("splash on a 2×2×2 mesh max|Δ|", jnp.max(jnp.abs((got - want)[valid])), 1e-5) <= 1e-5
    expected = jax.grad(lambda *x: jnp.sum(jnp.where(real, reference(*x), 0.0) * weights), argnums=(0, 1, 2))(q, k, v)
    for got_grad, want_grad in zip(grads, expected):
        np.testing.assert_allclose(got_grad, want_grad, atol=1e-5)


def test_splash_partition_keeps_only_mesh_axes_that_divide():
    """Heads stay whole when the kv heads do not split over `tensor`; rows stay whole when the batch does not
    split over the data axes."""
    mesh = sharding.make_mesh(data=1, fsdp=2, tensor=4, devices=jax.devices()[:8])
    with sharding.activate(mesh, sharding.DEFAULT_RULES):
        abstract = jax.sharding.get_abstract_mesh()
        assert attention.splash_partition(abstract, (4, 128, 8, 16), (4, 128, 4, 16)) == (("data", "fsdp"), "tensor")
        assert attention.splash_partition(abstract, (4, 128, 8, 16), (4, 128, 2, 16)) == (("data", "fsdp"), None)
        assert attention.splash_partition(abstract, (3, 128, 8, 16), (3, 128, 4, 16)) == (None, "tensor")


def test_auto_picks_xla_on_cpu_cudnn_on_gpu_splash_on_tpu(monkeypatch):
    settings = dict(dtype=jnp.bfloat16, causal=True, seq_len=2048, head_dim=64)
    assert attention.resolve_implementation("auto", **settings) == "xla"  # this CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert attention.resolve_implementation("auto", **settings) == "cudnn"
    assert attention.resolve_implementation("auto", **{**settings, "seq_len": 2047}) == "xla"  # cuDNN: even only
    assert attention.resolve_implementation("auto", **{**settings, "dtype": jnp.float32}) == "xla"
    assert attention.resolve_implementation("auto", **{**settings, "causal": False}) == "xla"  # a KV-cache step
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert attention.resolve_implementation("auto", **settings) == "splash"
    assert attention.resolve_implementation("auto", **{**settings, "seq_len": 100}) == "xla"
    assert attention.resolve_implementation("xla", **settings) == "xla"


def test_shapes_splash_or_cudnn_cannot_take_run_on_xla_with_a_warning(caplog):
    q, k, v, valid = _qkv(seq=3, keys=12)
    mask = jnp.ones((2, 1, 3, 12), bool)
    with caplog.at_level("WARNING"):
        got = attention.attend(q, k, v, mask, causal=False, implementation="splash")  # a KV-cache step
    np.testing.assert_array_equal(got, attention.attend(q, k, v, mask, causal=False, implementation="xla"))
    q, k, v, valid = _qkv(seq=101)
    key_mask = jnp.asarray(valid)[:, None, None, :]
    with caplog.at_level("WARNING"):
        for implementation in ("splash", "cudnn"):  # 101 tokens: not 128-tiled, and odd
            got = attention.attend(q, k, v, key_mask, causal=True, implementation=implementation)
            np.testing.assert_array_equal(got, attention.attend(q, k, v, key_mask, causal=True, implementation="xla"))
    text = caplog.text
    assert "attention='splash' cannot run a KV-cache step" in text and "attention='cudnn' cannot run an odd" in text


def test_model_forward_is_the_same_with_splash_and_xla(make_tiny_lm, record_diff):
    """The whole model with attention='splash' (interpret mode here) against the default XLA path."""
    xla_lm = make_tiny_lm(seed=3, attention="xla")
    splash_lm = make_tiny_lm(seed=3, attention="splash")
    tokens = jnp.asarray(np.random.default_rng(0).integers(3, 128, (2, 128)), jnp.int32)
    mask = jnp.ones((2, 128), bool).at[1, :40].set(False)
    got = splash_lm.module.apply({"params": splash_lm.params}, tokens, attention_mask=mask)
    want = xla_lm.module.apply({"params": xla_lm.params}, tokens, attention_mask=mask)
    diff = record_diff("model logits splash vs xla max|Δ|", jnp.max(jnp.abs((got - want)[np.asarray(mask)])), 1e-4)
    assert diff <= 1e-4
