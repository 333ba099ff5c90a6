"""Scaled dot-product attention through `jax.nn.dot_product_attention`: XLA everywhere (the CPU reference), cuDNN
flash attention on GPU, Pallas splash attention on TPU (`ModelConfig.attention`)."""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import PartitionSpec

from rlaif_jax import sharding

_HALF = (jnp.bfloat16, jnp.float16)
SPLASH_BLOCK = 128  # splash attention tiles the sequence in blocks of this many tokens


def resolve_implementation(implementation: str, *, dtype, causal: bool, seq_len: int, head_dim: int) -> str:
    """The implementation 'auto' stands for on this backend: 'cudnn' for half-precision forward passes without a KV
    cache on GPU (even lengths), 'splash' for those on TPU when the sequence tiles into blocks, else 'xla' (decoding
    steps and float32 always run on XLA)."""
    if implementation != "auto":
        return implementation
    backend = jax.default_backend()
    if causal and jnp.dtype(dtype) in [jnp.dtype(d) for d in _HALF]:
        if backend == "gpu" and head_dim % 8 == 0 and head_dim <= 256 and seq_len % 2 == 0:
            return "cudnn"  # cuDNN's flash attention with a mask trains on even lengths only
        if backend == "tpu" and seq_len % SPLASH_BLOCK == 0:
            return "splash"
    return "xla"


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array,
    *,
    causal: bool,
    implementation: str = "auto",
    window: int | None = None,
    scale: float | None = None,
) -> jax.Array:
    """softmax(q kᵀ / sqrt(head_dim) masked) v with grouped-query heads.

    q: [batch, seq, heads, head_dim]; k, v: [batch, keys, kv_heads, head_dim] (query head h reads kv head
    h // (heads / kv_heads)); mask: bool [batch, 1, 1, keys] (the real keys) when `causal` (keys are the queries,
    masked causally by position), else bool [batch, 1, seq, keys], the whole mask. `window` (causal only): query i
    sees keys i - window + 1 .. i (a sliding window). `scale`: of the scores (default head_dim ** -0.5). Softmax in
    float32.
    Returns [batch, seq, heads, head_dim] in q's dtype.
    """
    if window is not None and not causal:
        raise ValueError("a sliding window is given with causal=True; with a cache it belongs in the mask")
    implementation = resolve_implementation(
        implementation, dtype=q.dtype, causal=causal, seq_len=q.shape[1], head_dim=q.shape[-1]
    )
    if implementation not in ("xla", "cudnn", "splash"):
        raise ValueError(f"attention={implementation!r}; expected 'auto', 'xla', 'cudnn' or 'splash'")
    seq, keys = q.shape[1], k.shape[1]
    unsupported = None
    if implementation == "splash" and not (causal and seq % SPLASH_BLOCK == 0 and window is None):
        unsupported = f"a KV-cache step, a sliding window or a length not divisible by {SPLASH_BLOCK} ({seq} queries)"
    elif implementation == "cudnn" and causal and seq % 2:
        unsupported = f"an odd length ({seq}) with a mask"
    if unsupported:
        _warn_once(f"attention={implementation!r} cannot run {unsupported}; XLA attention runs it")
        implementation = "xla"
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if implementation == "splash":
        return _splash_attention(q, k, v, mask[:, 0, 0, :], scale=scale)
    if implementation == "cudnn" and causal:
        # cuDNN takes a mask only as a bias of the full [batch, 1, seq, keys] shape (measured on an H200, JAX 0.11.2)
        mask = mask & _band(seq, keys, window)[None, None]
        causal, window = False, None
    return jax.nn.dot_product_attention(
        q,
        k,
        v,
        mask=mask,
        is_causal=causal,
        scale=scale,
        local_window_size=None if window is None else (window - 1, 0),
        implementation=implementation,
    ).astype(q.dtype)


def _band(seq: int, keys: int, window: int | None) -> jax.Array:
    """bool [seq, keys]: causal, and within `window` of the query when given."""
    query, key = jnp.arange(seq)[:, None], jnp.arange(keys)[None, :]
    band = key <= query
    return band if window is None else band & (key > query - window)


@functools.lru_cache(maxsize=64)
def _warn_once(message: str) -> None:
    logging.warning(message)


def _splash_attention(q, k, v, key_valid, *, scale: float, interpret: bool | None = None):
    """Causal splash attention (TPU Pallas kernel; `interpret` runs it on any backend, for tests). Padding is a
    segment: real tokens (segment 1) attend to real tokens only, padding (segment 0) to padding.

    A Pallas kernel is opaque to XLA's partitioner, which would gather its inputs whole onto every device; under a
    multi-device mesh (`jax.set_mesh`, as `sharding.activate` sets) the kernel therefore runs in a `shard_map`, on
    each device's rows (`activation_batch`) and heads (`activation_heads`), as the logical-axis rules place them."""
    if q.shape[1] % SPLASH_BLOCK:
        raise ValueError(f"attention='splash' needs a sequence length divisible by {SPLASH_BLOCK}; got {q.shape[1]}")
    mesh = jax.sharding.get_abstract_mesh()
    if interpret is None:  # the Mosaic kernel where the mesh's devices are TPUs (a deviceless TPU compile included)
        device = None if mesh.empty else getattr(mesh, "abstract_device", None)
        interpret = (jax.default_backend() if device is None else device.platform) != "tpu"
    local = functools.partial(_splash_local, scale=scale, interpret=interpret)
    if mesh.empty or mesh.size == 1:
        return local(q, k, v, key_valid)
    batch_axes, head_axes = splash_partition(mesh, q.shape, k.shape)
    qkv = PartitionSpec(batch_axes, None, head_axes, None)
    return jax.shard_map(
        local, mesh=mesh, in_specs=(qkv, qkv, qkv, PartitionSpec(batch_axes, None)), out_specs=qkv, check_vma=False
    )(q, k, v, key_valid)


def splash_partition(mesh, q_shape, kv_shape) -> tuple:
    """(batch mesh axes, head mesh axes) that splash attention's `shard_map` splits q/k/v `[batch, seq, heads,
    head_dim]` over: those the current logical-axis rules give `activation_batch` and `activation_heads`, each kept
    only where it divides its dimension (`sharding.logical_to_sharding`), the heads only if they divide both the
    query and the kv heads; None where nothing applies (replicated)."""
    axes, rules = ("activation_batch", None, "activation_heads", None), nn.get_logical_axis_rules()
    q_spec = sharding.logical_to_sharding(q_shape, axes, mesh, rules).spec
    kv_spec = sharding.logical_to_sharding(kv_shape, axes, mesh, rules).spec
    return q_spec[0], (q_spec[2] if q_spec[2] == kv_spec[2] else None)


def _splash_local(q, k, v, key_valid, *, scale: float, interpret: bool):
    """Splash attention over the rows and heads at hand (one device's, inside the `shard_map`)."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash

    seq, heads = q.shape[1], q.shape[2]
    block = min(seq, 512)
    block_sizes = splash.BlockSizes(
        block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block, block_kv_dkv=block,
        block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block,
    )  # fmt: skip
    kernel = _splash_kernel(seq, heads, block_sizes, interpret)
    segments = key_valid.astype(jnp.int32)
    heads_major = lambda x: jnp.swapaxes(x, 1, 2)  # noqa: E731  [batch, heads, seq, head_dim]
    out = jax.vmap(lambda q1, k1, v1, s1: kernel(q1, k1, v1, segment_ids=splash.SegmentIds(q=s1, kv=s1)))(
        heads_major(q * jnp.asarray(scale, q.dtype)), heads_major(k), heads_major(v), segments
    )
    return heads_major(out).astype(q.dtype)


@functools.lru_cache(maxsize=16)
def _splash_kernel(seq: int, heads: int, block_sizes, interpret: bool):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

    mask = splash_mask.MultiHeadMask([splash_mask.CausalMask((seq, seq)) for _ in range(heads)])
    return splash.make_splash_mha(mask, head_shards=1, q_seq_shards=1, block_sizes=block_sizes, interpret=interpret)


def reference_attention(
    q, k, v, mask: np.ndarray | jax.Array, *, causal: bool, window: int | None = None, scale: float | None = None
):
    """The plain einsum-softmax-einsum the implementations are tested against (float32 softmax)."""
    batch, seq, heads, head_dim = q.shape
    kv_heads = k.shape[2]
    group = heads // kv_heads
    if causal:
        mask = mask & _band(seq, k.shape[1], window)[None, None]
    grouped = q.reshape(batch, seq, kv_heads, group, head_dim)
    scale = head_dim**-0.5 if scale is None else scale
    scores = jnp.einsum("bskgd,btkd->bkgst", grouped, k, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
    out = jnp.einsum("bkgst,btkd->bskgd", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(batch, seq, heads, head_dim).astype(q.dtype)
