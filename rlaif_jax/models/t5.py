"""T5-style encoder–decoder (Raffel et al. 2020; v1.1: gated-GELU FFN): relative position buckets, RMS layer norms
without bias, unscaled dot-product attention, a shared embedding.

`EncoderDecoder(config).apply({'params': p}, encoder_ids, decoder_ids)` gives float32 logits
`[batch, dec_len, vocab]`. Sampling runs the encoder once and the decoder against a KV cache
(`rlaif_jax.inference.seq2seq`). Every parameter carries logical axis names, so `rlaif_jax.sharding` places it on a
mesh like the decoder-only model's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlaif_jax.models.config import parse_dtype
from rlaif_jax.models.transformer import _matmul

FEED_FORWARD = ("gated-gelu", "relu", "gated-relu", "gelu")
_KERNEL_INIT = nn.initializers.normal(stddev=0.05)


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Hyperparameters of a T5 encoder–decoder, as HF's `T5Config` names them. Frozen and hashable."""

    vocab_size: int = 128
    d_model: int = 32
    d_kv: int = 8
    d_ff: int = 64
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2
    num_heads: int = 4
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"  # 'gated-gelu' (v1.1: gelu_new(wi_0 x) * wi_1 x) or 'relu' (v1.0)
    tie_word_embeddings: bool = True  # the LM head is the shared embedding; False: a separate `lm_head`
    scale_decoder_outputs: bool = False  # decoder output * d_model ** -0.5 before the head (T5 v1.0)
    decoder_start_token_id: int = 0
    pad_token_id: int = 0
    eos_token_ids: tuple[int, ...] = (1,)
    dtype: str = "float32"
    param_dtype: str = "float32"
    model_type: str = "t5"

    def __post_init__(self):
        object.__setattr__(self, "eos_token_ids", tuple(int(i) for i in self.eos_token_ids))
        if self.feed_forward_proj not in FEED_FORWARD:
            raise ValueError(f"feed_forward_proj={self.feed_forward_proj!r}; expected one of {FEED_FORWARD}")
        parse_dtype(self.dtype, key="dtype")
        parse_dtype(self.param_dtype, key="param_dtype")

    def replace(self, **changes) -> T5Config:
        """Returns a copy with `changes` applied."""
        return dataclasses.replace(self, **changes)


def relative_position_bucket(relative_position: jax.Array, bidirectional: bool, num_buckets: int, max_distance: int):
    """Mesh-TensorFlow's bucket of each `memory_position - query_position` (int array, any shape): exact for small
    distances, logarithmic up to `max_distance`; bidirectional buckets split by sign."""
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).astype(relative_position.dtype) * num_buckets
        relative_position = jnp.abs(relative_position)
    else:
        relative_position = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    # float32 log as torch computes it; the where keeps log(0) out of the small branch's gradient-free path.
    scaled = jnp.log(jnp.maximum(relative_position, 1).astype(jnp.float32) / max_exact)
    large = max_exact + (scaled / math.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(
        relative_position.dtype
    )
    large = jnp.minimum(large, num_buckets - 1)
    return buckets + jnp.where(is_small, relative_position, large)


class T5Norm(nn.Module):
    """RMS norm without mean subtraction or bias, the variance in float32."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
            (cfg.d_model,),
            parse_dtype(cfg.param_dtype),
        )
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + cfg.layer_norm_epsilon)
        return (scale.astype(jnp.float32) * normed).astype(parse_dtype(cfg.dtype))


class T5Attention(nn.Module):
    """Multi-head attention without the 1/sqrt(d) scale (T5 folds it into the init)."""

    config: T5Config

    def setup(self):
        cfg = self.config
        param_dtype = parse_dtype(cfg.param_dtype)
        h, dk, d = cfg.num_heads, cfg.d_kv, cfg.d_model
        in_axes = ("embed", "q_heads", "head_dim")
        self.q = self.param("q", nn.with_logical_partitioning(_KERNEL_INIT, in_axes), (d, h, dk), param_dtype)
        self.k = self.param("k", nn.with_logical_partitioning(_KERNEL_INIT, in_axes), (d, h, dk), param_dtype)
        self.v = self.param("v", nn.with_logical_partitioning(_KERNEL_INIT, in_axes), (d, h, dk), param_dtype)
        out_axes = ("q_heads", "head_dim", "embed")
        self.o = self.param("o", nn.with_logical_partitioning(_KERNEL_INIT, out_axes), (h, dk, d), param_dtype)

    def project(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values of `x [batch, s, d_model]`, each `[batch, s, heads, d_kv]`."""
        dtype = parse_dtype(self.config.dtype)
        return _matmul("bsd,dhk->bshk", x, self.k, dtype), _matmul("bsd,dhk->bshk", x, self.v, dtype)

    def attend(self, x: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array, mask: jax.Array) -> jax.Array:
        """x: [batch, q, d_model] (the queries' input); k, v: [batch, s, heads, d_kv]; bias: additive position bias
        broadcastable to [batch, heads, q, s]; mask: bool, broadcastable to it. Returns [batch, q, d_model]."""
        dtype = parse_dtype(self.config.dtype)
        q = _matmul("bsd,dhk->bshk", x, self.q, dtype)
        scores = jnp.einsum("bqhk,bshk->bhqs", q, k, preferred_element_type=jnp.float32) + bias
        scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1).astype(dtype)
        out = jnp.einsum("bhqs,bshk->bqhk", weights, v, preferred_element_type=jnp.float32).astype(dtype)
        return _matmul("bqhk,hkd->bqd", out, self.o, dtype)


class T5FeedForward(nn.Module):
    """`wo(act(wi_0 x) * wi_1 x)` (gated) or `wo(act(wi x))`; act: tanh-GELU or ReLU."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        dtype, param_dtype = parse_dtype(cfg.dtype), parse_dtype(cfg.param_dtype)
        d, f = cfg.d_model, cfg.d_ff

        def kernel(name, shape, axes):
            return self.param(name, nn.with_logical_partitioning(_KERNEL_INIT, axes), shape, param_dtype)

        act = (lambda z: jax.nn.gelu(z, approximate=True)) if cfg.feed_forward_proj.endswith("gelu") else jax.nn.relu
        if cfg.feed_forward_proj.startswith("gated"):
            hidden = act(_matmul("bsd,df->bsf", x, kernel("wi_0", (d, f), ("embed", "mlp")), dtype))
            hidden = hidden * _matmul("bsd,df->bsf", x, kernel("wi_1", (d, f), ("embed", "mlp")), dtype)
        else:
            hidden = act(_matmul("bsd,df->bsf", x, kernel("wi", (d, f), ("embed", "mlp")), dtype))
        return _matmul("bsf,fd->bsd", hidden, kernel("wo", (f, d), ("mlp", "embed")), dtype)


class EncoderBlock(nn.Module):
    """Pre-norm self-attention (bidirectional) and feed-forward, each residual."""

    config: T5Config

    def setup(self):
        self.attention_norm = T5Norm(self.config)
        self.attention = T5Attention(self.config)
        self.mlp_norm = T5Norm(self.config)
        self.mlp = T5FeedForward(self.config)

    def __call__(self, x: jax.Array, bias: jax.Array, mask: jax.Array) -> jax.Array:
        normed = self.attention_norm(x)
        x = x + self.attention.attend(normed, *self.attention.project(normed), bias, mask)
        return x + self.mlp(self.mlp_norm(x))


class DecoderBlock(nn.Module):
    """Pre-norm causal self-attention, cross-attention over the encoding, feed-forward, each residual."""

    config: T5Config

    def setup(self):
        cfg = self.config
        self.attention_norm = T5Norm(cfg)
        self.attention = T5Attention(cfg)
        self.cross_attention_norm = T5Norm(cfg)
        self.cross_attention = T5Attention(cfg)
        self.mlp_norm = T5Norm(cfg)
        self.mlp = T5FeedForward(cfg)

    def cross_keys_values(self, encoder_hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The cross-attention keys and values of an encoding: computed once per sampled batch."""
        return self.cross_attention.project(encoder_hidden)

    def __call__(self, x, self_bias, self_mask, cross_kv, cross_mask, cache_kv=None, write_index=None):
        """x: [batch, q, d_model]; cross_kv: this layer's `cross_keys_values`; cache_kv: None (a full pass) or this
        layer's cached (k, v) `[batch, cache_len, heads, d_kv]`, into which the new keys / values go at
        `write_index`. Returns (x, the (k, v) the self-attention read)."""
        normed = self.attention_norm(x)
        k, v = self.attention.project(normed)
        if cache_kv is not None:
            k = jax.lax.dynamic_update_slice(cache_kv[0], k.astype(cache_kv[0].dtype), (0, write_index, 0, 0))
            v = jax.lax.dynamic_update_slice(cache_kv[1], v.astype(cache_kv[1].dtype), (0, write_index, 0, 0))
        x = x + self.attention.attend(normed, k, v, self_bias, self_mask)
        x = x + self.cross_attention.attend(self.cross_attention_norm(x), *cross_kv, 0.0, cross_mask)
        return x + self.mlp(self.mlp_norm(x)), (k, v)


class EncoderDecoder(nn.Module):
    """T5: `apply({'params': p}, encoder_ids, decoder_ids, encoder_mask=None)` -> float32 logits
    `[batch, dec_len, vocab]`. Other entry points (`apply(..., method=...)`): `encode`, `decode`, `start_cache`,
    `decode_step`."""

    config: T5Config

    def setup(self):
        cfg = self.config
        param_dtype = parse_dtype(cfg.param_dtype)
        self.shared = self.param(
            "shared",
            nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
            (cfg.vocab_size, cfg.d_model),
            param_dtype,
        )
        buckets = cfg.relative_attention_num_buckets
        bias_init = nn.with_logical_partitioning(_KERNEL_INIT, (None, "q_heads"))
        self.encoder_relative_bias = self.param(
            "encoder_relative_bias", bias_init, (buckets, cfg.num_heads), param_dtype
        )
        self.decoder_relative_bias = self.param(
            "decoder_relative_bias", bias_init, (buckets, cfg.num_heads), param_dtype
        )
        self.encoder_blocks = [EncoderBlock(cfg, name=f"encoder_{i}") for i in range(cfg.num_layers)]
        self.encoder_norm = T5Norm(cfg)
        self.decoder_blocks = [DecoderBlock(cfg, name=f"decoder_{i}") for i in range(cfg.num_decoder_layers)]
        self.decoder_norm = T5Norm(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = self.param(
                "lm_head",
                nn.with_logical_partitioning(_KERNEL_INIT, ("embed", "vocab")),
                (cfg.d_model, cfg.vocab_size),
                param_dtype,
            )

    def _position_bias(self, table, query_len: int, key_len: int, offset, bidirectional: bool) -> jax.Array:
        """`[1, heads, query_len, key_len]` float32 from the bucket table, queries at positions offset + i."""
        cfg = self.config
        relative = jnp.arange(key_len)[None, :] - (jnp.arange(query_len)[:, None] + offset)
        bucket = relative_position_bucket(
            relative, bidirectional, cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance
        )
        return jnp.take(table.astype(jnp.float32), bucket, axis=0).transpose(2, 0, 1)[None]

    def _embed(self, ids: jax.Array) -> jax.Array:
        ids = jnp.asarray(ids)
        if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"token ids must be an integer array [batch, seq]; got {ids.dtype}{list(ids.shape)}")
        return jnp.take(self.shared, ids, axis=0).astype(parse_dtype(self.config.dtype))

    def encode(self, encoder_ids: jax.Array, encoder_mask: jax.Array | None = None) -> jax.Array:
        """The final-normed encoding `[batch, enc_len, d_model]` of `encoder_ids [batch, enc_len]`; `encoder_mask`
        (1 = real token) hides padding from every attention."""
        x = self._embed(encoder_ids)
        length = x.shape[1]
        mask = _key_mask(encoder_mask, x.shape[:2])
        bias = self._position_bias(self.encoder_relative_bias, length, length, 0, bidirectional=True)
        for block in self.encoder_blocks:
            x = block(x, bias, mask)
        return self.encoder_norm(x)

    def _logits(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        x = self.decoder_norm(x).astype(jnp.float32)
        if cfg.scale_decoder_outputs:
            x = x * cfg.d_model**-0.5
        if cfg.tie_word_embeddings:
            return jnp.einsum("bsd,vd->bsv", x, self.shared.astype(jnp.float32))
        return jnp.einsum("bsd,dv->bsv", x, self.lm_head.astype(jnp.float32))

    def decode(
        self, decoder_ids: jax.Array, encoder_hidden: jax.Array, encoder_mask: jax.Array | None = None
    ) -> jax.Array:
        """Logits `[batch, dec_len, vocab]` of the whole decoder input (teacher forcing), causal."""
        x = self._embed(decoder_ids)
        length = x.shape[1]
        causal = (jnp.arange(length)[None, :] <= jnp.arange(length)[:, None])[None, None]
        bias = self._position_bias(self.decoder_relative_bias, length, length, 0, bidirectional=False)
        cross_mask = _key_mask(encoder_mask, encoder_hidden.shape[:2])
        for block in self.decoder_blocks:
            x, _ = block(x, bias, causal, block.cross_keys_values(encoder_hidden), cross_mask)
        return self._logits(x)

    def __call__(self, encoder_ids, decoder_ids, encoder_mask=None) -> jax.Array:
        """Logits `[batch, dec_len, vocab]` (float32) of `decoder_ids` (starting with decoder_start_token_id)."""
        return self.decode(decoder_ids, self.encode(encoder_ids, encoder_mask), encoder_mask)

    def start_cache(self, encoder_hidden: jax.Array, max_decode_len: int) -> dict[str, Any]:
        """A decoding cache for `encoder_hidden [batch, enc_len, d_model]`: each decoder layer's cross-attention
        keys / values (computed here, once) and empty self-attention keys / values for `max_decode_len` tokens."""
        cfg = self.config
        batch = encoder_hidden.shape[0]
        dtype = parse_dtype(cfg.dtype)
        cross = [block.cross_keys_values(encoder_hidden) for block in self.decoder_blocks]
        empty = jnp.zeros((len(self.decoder_blocks), batch, max_decode_len, cfg.num_heads, cfg.d_kv), dtype)
        return {
            "k": empty,
            "v": empty,
            "cross_k": jnp.stack([k for k, _ in cross]),
            "cross_v": jnp.stack([v for _, v in cross]),
            "index": jnp.zeros((), jnp.int32),
        }

    def decode_step(self, decoder_ids: jax.Array, cache: dict[str, Any], encoder_mask=None):
        """Runs `decoder_ids [batch, q]` (positions index .. index + q - 1) against `cache`; returns (float32
        logits `[batch, q, vocab]`, the cache with their keys / values written and the index advanced)."""
        x = self._embed(decoder_ids)
        q, cache_len = x.shape[1], cache["k"].shape[2]
        index = cache["index"]
        positions = index + jnp.arange(q)
        causal = (jnp.arange(cache_len)[None, :] <= positions[:, None])[None, None]
        bias = self._position_bias(self.decoder_relative_bias, q, cache_len, index, bidirectional=False)
        cross_mask = _key_mask(encoder_mask, cache["cross_k"].shape[1:3])
        new_k, new_v = [], []
        for i, block in enumerate(self.decoder_blocks):
            cross_kv = (cache["cross_k"][i], cache["cross_v"][i])
            x, (k, v) = block(x, bias, causal, cross_kv, cross_mask, (cache["k"][i], cache["v"][i]), index)
            new_k.append(k)
            new_v.append(v)
        cache = {**cache, "k": jnp.stack(new_k), "v": jnp.stack(new_v), "index": index + q}
        return self._logits(x), cache


def _key_mask(mask: jax.Array | None, batch_and_length: tuple[int, int]) -> jax.Array:
    """bool `[batch, 1, 1, keys]` from a `[batch, keys]` 1 = real mask (all real when None)."""
    if mask is None:
        return jnp.ones((batch_and_length[0], 1, 1, batch_and_length[1]), bool)
    return jnp.asarray(mask, bool)[:, None, None, :]
