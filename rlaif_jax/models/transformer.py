"""A Llama-family decoder in Flax linen: RMSNorm, RoPE, GQA attention over an explicit KV cache, SwiGLU; with the
variations of Qwen2 (q/k/v bias), Qwen3 (QK-norm), Mistral (sliding window) and Gemma 3 (sliding and full layers
with their own RoPE, (1 + w) and sandwich norms, GeGLU, scaled embeddings, query_pre_attn_scalar, logit soft-cap).

Layers are one `nn.scan` over a stacked parameter tree (leading `layers` axis), so compile time does not grow with
depth. Every parameter carries logical axis names; `rlaif_jax.sharding` maps them onto a mesh. Matmuls accumulate
in float32 (`preferred_element_type`) whatever the parameter dtype, and logits come out in float32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlaif_jax.models import lm_head, lora
from rlaif_jax.models.attention import attend
from rlaif_jax.models.config import ModelConfig, parse_dtype
from rlaif_jax.models.heads import ScalarHead

Cache = dict[str, jax.Array]

_KERNEL_INIT = nn.initializers.normal(stddev=0.02)  # HF's initializer_range default


def _matmul(spec: str, x: jax.Array, kernel: jax.Array, dtype: Any) -> jax.Array:
    """einsum in `dtype` with float32 accumulation, cast back to `dtype`."""
    return jnp.einsum(spec, x, kernel.astype(dtype), preferred_element_type=jnp.float32).astype(dtype)


def _lora_delta(module: nn.Module, target: str, x: jax.Array, a_shape, a_axes, b_shape, b_axes, specs) -> Any:
    """`(alpha / r) (dropout(x) A) B` of the LoRA adapter on projection `target`, or None when it has none.
    specs: the two einsum specs (x with A, then with B). Dropout applies only when a 'dropout' rng is given."""
    cfg = module.config
    if not cfg.lora_rank or target not in cfg.lora_targets:
        return None
    dtype, param_dtype = parse_dtype(cfg.dtype), parse_dtype(cfg.param_dtype)
    a = module.param(
        f"{lora.PREFIX}{target}_a", nn.with_logical_partitioning(lora.a_init, a_axes), a_shape, param_dtype
    )
    b = module.param(
        f"{lora.PREFIX}{target}_b", nn.with_logical_partitioning(nn.initializers.zeros, b_axes), b_shape, param_dtype
    )
    if cfg.lora_dropout and module.has_rng("dropout"):
        x = nn.Dropout(cfg.lora_dropout, deterministic=False, name=f"{lora.PREFIX}{target}_dropout")(x)
    scale = cfg.lora_alpha / cfg.lora_rank
    return _matmul(specs[1], _matmul(specs[0], x, a, dtype), b, dtype) * jnp.asarray(scale, dtype)


def rope_inverse_frequencies(head_dim: int, theta: float, llama3_scaling: tuple | None = None) -> np.ndarray:
    """RoPE inverse frequencies `[head_dim // 2]` (float32), with the Llama-3 frequency-dependent scaling if given.

    Llama 3 (Meta 2024): wavelengths longer than `original / low_freq_factor` are slowed by `factor`, shorter than
    `original / high_freq_factor` are kept, and the band between is interpolated smoothly.
    """
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim
    inv_freq = (1.0 / (np.float32(theta) ** exponents)).astype(np.float32)
    if llama3_scaling is None:
        return inv_freq
    factor, low_freq_factor, high_freq_factor, original = llama3_scaling
    wavelength = 2 * np.pi / inv_freq
    low_freq_wavelength = original / low_freq_factor
    high_freq_wavelength = original / high_freq_factor
    scaled = np.where(wavelength > low_freq_wavelength, inv_freq / factor, inv_freq)
    smooth = (original / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelength >= high_freq_wavelength) & (wavelength <= low_freq_wavelength)
    return np.where(is_medium, smoothed, scaled).astype(np.float32)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
    """Rotates `x [batch, seq, heads, head_dim]` by `positions [batch, seq]` (HF's rotate-half convention)."""
    freqs = positions[..., None].astype(jnp.float32) * jnp.asarray(inv_freq)  # [batch, seq, head_dim // 2]
    angles = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    first, second = jnp.split(x, 2, axis=-1)
    return x * cos + jnp.concatenate([-second, first], axis=-1) * sin


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32 over the last axis, of size `features` (0 = hidden_size):
    `[..., features] -> [..., features]`."""

    config: ModelConfig
    features: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = parse_dtype(self.config.dtype)
        plus_one = self.config.norm_plus_one  # Gemma: (1 + w) in float32, w starting at 0
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.zeros if plus_one else nn.initializers.ones, ("norm",)),
            (self.features or self.config.hidden_size,),
            parse_dtype(self.config.param_dtype),
        )
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.config.rms_norm_eps)
        if plus_one:
            return (normed * (1.0 + scale.astype(jnp.float32))).astype(dtype)
        return scale.astype(dtype) * normed.astype(dtype)


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE, reading and writing one layer of a stacked KV cache.
    `layer_index`: the layer's number when it is not scanned (a scanned layer reads it from the carry)."""

    config: ModelConfig
    layer_index: int | None = None

    def _projection(self, name: str, shape: tuple, axes: tuple) -> jax.Array:
        return self.param(
            name, nn.with_logical_partitioning(_KERNEL_INIT, axes), shape, parse_dtype(self.config.param_dtype)
        )

    def _bias(self, name: str, shape: tuple, axes: tuple) -> jax.Array:
        return self.param(
            name,
            nn.with_logical_partitioning(nn.initializers.zeros, axes),
            shape,
            parse_dtype(self.config.param_dtype),
        )

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        cache_k: jax.Array | None,
        cache_v: jax.Array | None,
        layer: jax.Array,
        cache_index: jax.Array,
    ) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
        """x: [batch, seq, hidden]; mask: bool [batch, 1, 1, keys] (which keys are real; causal by position)
        without a cache, bool [batch, 1, seq, keys] (the whole mask) with one; cache_k/v: [layers, batch,
        cache_len, kv_heads, head_dim] or None; layer: this layer's slot in the cache. Returns (out, cache_k,
        cache_v)."""
        cfg = self.config
        dtype = parse_dtype(cfg.dtype)
        d, h, kvh, hd = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        group = h // kvh
        # One fused projection: for each kv head, its `group` query heads, then its key, then its value.
        qkv_axes = ("embed", "kv_heads", "qkv", "head_dim")
        qkv = _matmul("bsd,dkcf->bskcf", x, self._projection("qkv_proj", (d, kvh, group + 2, hd), qkv_axes), dtype)
        if cfg.attention_bias:
            qkv = qkv + self._bias("qkv_bias", (kvh, group + 2, hd), qkv_axes[1:]).astype(dtype)
        if cfg.lora_rank:
            r, specs = cfg.lora_rank, ("bsd,dr->bsr", "bsr,rkcf->bskcf")
            deltas = [
                _lora_delta(self, t, x, (d, r), ("embed", None), (r, kvh, n, hd), (None, *qkv_axes[1:]), specs)
                for t, n in (("q", group), ("k", 1), ("v", 1))
            ]
            if any(delta is not None for delta in deltas):
                zeros = [jnp.zeros((*x.shape[:2], kvh, n, hd), dtype) for n in (group, 1, 1)]
                qkv = qkv + jnp.concatenate([z if d_ is None else d_ for d_, z in zip(deltas, zeros)], axis=3)
        batch, seq = x.shape[:2]
        q = qkv[:, :, :, :group].reshape(batch, seq, h, hd)  # query head kv * group + g, as in HF's repeat_kv
        k, v = qkv[:, :, :, group], qkv[:, :, :, group + 1]  # [batch, seq, kv_heads, head_dim]
        if cfg.qk_norm:
            q = RMSNorm(cfg, features=hd, name="q_norm")(q)
            k = RMSNorm(cfg, features=hd, name="k_norm")(k)
        sliding_layers = cfg.sliding_layers
        mixed = len(set(sliding_layers)) > 1  # Gemma 3: which kind this layer is, known at run time in a scan
        number = layer if self.layer_index is None else self.layer_index
        sliding = jnp.asarray(sliding_layers)[number] if mixed else sliding_layers[0]
        inv_freq = rope_inverse_frequencies(hd, cfg.rope_theta, cfg.rope_llama3_scaling)
        if cfg.rope_linear_factor is not None:
            inv_freq = inv_freq / np.float32(cfg.rope_linear_factor)
        if cfg.rope_local_theta is not None and any(sliding_layers):
            local = rope_inverse_frequencies(hd, cfg.rope_local_theta)
            inv_freq = jnp.where(sliding, local, inv_freq) if mixed else local
        q = apply_rope(q, positions, inv_freq)
        k = apply_rope(k, positions, inv_freq)
        q = nn.with_logical_constraint(q, ("activation_batch", "activation_length", "activation_heads", None))

        if cache_k is not None:
            # Write only the new keys into the stacked cache (in place inside the decode loop), then read this layer.
            start = (layer, 0, cache_index, 0, 0)
            cache_k = jax.lax.dynamic_update_slice(cache_k, k[None].astype(cache_k.dtype), start)
            cache_v = jax.lax.dynamic_update_slice(cache_v, v[None].astype(cache_v.dtype), start)
            k = jax.lax.dynamic_index_in_dim(cache_k, layer, axis=0, keepdims=False).astype(dtype)
            v = jax.lax.dynamic_index_in_dim(cache_v, layer, axis=0, keepdims=False).astype(dtype)

        causal, window = cache_k is None, None
        if any(sliding_layers):
            query_slots = cache_index + jnp.arange(seq)
            key_slots = jnp.arange(k.shape[1])
            in_window = key_slots[None, :] > query_slots[:, None] - cfg.sliding_window  # [seq, keys]
            if causal and not mixed:
                window = cfg.sliding_window  # every layer slides: the kernels' own window
            else:  # the whole mask, with this layer's window when it slides
                if causal:
                    mask = mask & (key_slots[None, :] <= query_slots[:, None])[None, None]
                    causal = False
                mask = mask & (jnp.logical_or(in_window, jnp.logical_not(sliding)) if mixed else in_window)[None, None]
        scale = (cfg.query_pre_attn_scalar or hd) ** -0.5
        out = attend(q, k, v, mask, causal=causal, implementation=cfg.attention, window=window, scale=scale)
        out = out.astype(dtype)
        wo = self._projection("o_proj", (h, hd, d), ("q_heads", "head_dim", "embed"))
        projected = _matmul("bshk,hkd->bsd", out, wo, dtype)
        r = cfg.lora_rank
        delta = _lora_delta(
            self,
            "o",
            out,
            (h, hd, r),
            ("q_heads", "head_dim", None),
            (r, d),
            (None, "embed"),
            ("bshk,hkr->bsr", "bsr,rd->bsd"),
        )
        return (projected if delta is None else projected + delta), cache_k, cache_v


class MLP(nn.Module):
    """Gated feed-forward: down(act(gate(x)) * up(x)), act silu (SwiGLU) or tanh-GELU (GeGLU);
    `[batch, seq, hidden] -> [batch, seq, hidden]`."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        dtype, param_dtype = parse_dtype(cfg.dtype), parse_dtype(cfg.param_dtype)
        d, f = cfg.hidden_size, cfg.intermediate_size

        def kernel(name, shape, axes):
            return self.param(name, nn.with_logical_partitioning(_KERNEL_INIT, axes), shape, param_dtype)

        gate_up = _matmul("bsd,dcf->bscf", x, kernel("gate_up_proj", (d, 2, f), ("embed", None, "mlp")), dtype)
        gate, up = gate_up[:, :, 0], gate_up[:, :, 1]
        r, specs = cfg.lora_rank, ("bsd,dr->bsr", "bsr,rf->bsf")
        gate_delta = _lora_delta(self, "gate", x, (d, r), ("embed", None), (r, f), (None, "mlp"), specs)
        up_delta = _lora_delta(self, "up", x, (d, r), ("embed", None), (r, f), (None, "mlp"), specs)
        gate = gate if gate_delta is None else gate + gate_delta
        up = up if up_delta is None else up + up_delta
        activated = jax.nn.silu(gate) if cfg.activation == "silu" else jax.nn.gelu(gate, approximate=True)
        hidden = nn.with_logical_constraint(activated * up, ("activation_batch", "activation_length", "activation_mlp"))
        out = _matmul("bsf,fd->bsd", hidden, kernel("down_proj", (f, d), ("mlp", "embed")), dtype)
        specs = ("bsf,fr->bsr", "bsr,rd->bsd")
        delta = _lora_delta(self, "down", hidden, (f, r), ("mlp", None), (r, d), (None, "embed"), specs)
        return out if delta is None else out + delta


class DecoderBlock(nn.Module):
    """Pre-norm residual block (with `sandwich_norms`, the attention and MLP outputs are normed too); a scan body whose
    carry is (hidden, cache_k, cache_v, layer index). `layer_index`: the layer's number when not scanned."""

    config: ModelConfig
    layer_index: int | None = None

    @nn.compact
    def __call__(self, carry, positions, mask, cache_index):
        cfg = self.config
        x, cache_k, cache_v, layer = carry
        attention_out, cache_k, cache_v = Attention(cfg, layer_index=self.layer_index, name="attention")(
            RMSNorm(cfg, name="input_norm")(x), positions, mask, cache_k, cache_v, layer, cache_index
        )
        if cfg.sandwich_norms:
            attention_out = RMSNorm(cfg, name="attention_output_norm")(attention_out)
        x = x + attention_out
        mlp_out = MLP(cfg, name="mlp")(RMSNorm(cfg, name="post_attention_norm")(x))
        if cfg.sandwich_norms:
            mlp_out = RMSNorm(cfg, name="mlp_output_norm")(mlp_out)
        x = x + mlp_out
        x = nn.with_logical_constraint(x, ("activation_batch", "activation_length", "activation_embed"))
        return (x, cache_k, cache_v, layer + 1), None


_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class Transformer(nn.Module):
    """Decoder-only LM with an optional scalar (value / reward) head.

    With `config.scan_layers` the blocks' parameters are stacked under `layers` (leading `[layers]` axis) and run by
    one `nn.scan`; without, they are separate trees `layers_0 .. layers_{n-1}` (see `models.layout` to convert).

    `apply({"params": p}, tokens)` with int32 `tokens [batch, seq]` returns float32 `logits [batch, seq, vocab]`.
    Other entry points (via `apply(..., method=...)`): `forward_with_cache`, `hidden_with_cache`, `hidden_states`,
    `logits_from_hidden`, `head_logprobs` (log-probs of targets without the full logits), `scalar`.
    """

    config: ModelConfig

    def setup(self):
        cfg = self.config
        param_dtype = parse_dtype(cfg.param_dtype)
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(_KERNEL_INIT, ("vocab", "embed")),
            (cfg.vocab_size, cfg.hidden_size),
            param_dtype,
        )
        block = DecoderBlock
        if cfg.remat != "none":
            block = nn.remat(block, prevent_cse=False, policy=_REMAT_POLICIES[cfg.remat])
        scanned = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
            length=cfg.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )
        if cfg.scan_layers:
            self.layers = scanned(cfg, name="layers")
        else:
            self.blocks = [block(cfg, layer_index=i, name=f"layers_{i}") for i in range(cfg.num_layers)]
        self.final_norm = RMSNorm(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = self.param(
                "lm_head",
                nn.with_logical_partitioning(_KERNEL_INIT, ("embed", "vocab")),
                (cfg.hidden_size, cfg.vocab_size),
                param_dtype,
            )
        if cfg.scalar_head:
            self.scalar_head = ScalarHead(param_dtype=param_dtype)

    def _backbone(self, tokens, positions, attention_mask, cache):
        """Final-normed hidden states `[batch, seq, hidden]` and the updated cache (or None)."""
        cfg = self.config
        dtype = parse_dtype(cfg.dtype)
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"tokens must be an integer array [batch, seq]; got {tokens.dtype}{list(tokens.shape)}")
        batch, seq = tokens.shape
        new_valid = jnp.ones((batch, seq), bool) if attention_mask is None else jnp.asarray(attention_mask, bool)
        if cache is None:
            cache_index = jnp.zeros((), jnp.int32)
            key_valid, num_keys, previous_valid = new_valid, seq, 0
            cache_k = cache_v = None
        else:
            cache_index = cache["index"]
            key_valid = jax.lax.dynamic_update_slice(cache["valid"], new_valid, (0, cache_index))
            num_keys = cache["valid"].shape[1]
            previous_valid = jnp.sum(cache["valid"], axis=1, keepdims=True)
            cache_k, cache_v = cache["k"], cache["v"]
        if positions is None:
            positions = previous_valid + jnp.maximum(jnp.cumsum(new_valid, axis=1) - 1, 0)
        if cache is None:  # keys are the queries: causal by position, and the real keys
            mask = key_valid[:, None, None, :]
        else:  # queries sit at slots cache_index.. of the cache: the whole mask
            query_slots = cache_index + jnp.arange(seq)
            visible = jnp.arange(num_keys)[None, :] <= query_slots[:, None]  # sliding windows: in Attention
            mask = (visible[None] & key_valid[:, None, :])[:, None]

        x = jnp.take(self.embedding, tokens, axis=0).astype(dtype)
        if cfg.embedding_scale:
            x = x * jnp.asarray(cfg.hidden_size**0.5, dtype)
        x = nn.with_logical_constraint(x, ("activation_batch", "activation_length", "activation_embed"))
        first_layer = jnp.zeros((), jnp.int32)
        if self.config.scan_layers:
            (x, cache_k, cache_v, _), _ = self.layers((x, cache_k, cache_v, first_layer), positions, mask, cache_index)
        else:
            # One buffer per layer: on CPU this decodes ~2.5x faster than slicing stacked weights in a loop.
            new_k, new_v = [], []
            for i, block in enumerate(self.blocks):
                layer_k = None if cache_k is None else cache_k[i]
                layer_v = None if cache_v is None else cache_v[i]
                (x, layer_k, layer_v, _), _ = block((x, layer_k, layer_v, first_layer), positions, mask, cache_index)
                new_k.append(layer_k)
                new_v.append(layer_v)
            if cache_k is not None:
                cache_k, cache_v = tuple(new_k), tuple(new_v)
        hidden = self.final_norm(x)
        if cache is None:
            return hidden, None
        return hidden, {"k": cache_k, "v": cache_v, "valid": key_valid, "index": cache_index + seq}

    def _logits(self, hidden: jax.Array) -> jax.Array:
        dtype = parse_dtype(self.config.dtype)
        if self.config.tie_word_embeddings:
            logits = jnp.einsum("bsd,vd->bsv", hidden, self.embedding.astype(dtype), preferred_element_type=jnp.float32)
        else:
            logits = jnp.einsum("bsd,dv->bsv", hidden, self.lm_head.astype(dtype), preferred_element_type=jnp.float32)
        return self._softcap(
            nn.with_logical_constraint(logits, ("activation_batch", "activation_length", "activation_vocab"))
        )

    def _softcap(self, logits: jax.Array) -> jax.Array:
        cap = self.config.final_logit_softcap
        return logits if cap is None else cap * jnp.tanh(logits / cap)

    def __call__(self, tokens, positions=None, attention_mask=None) -> jax.Array:
        """tokens: int [batch, seq]; positions: int [batch, seq] (default from the mask); attention_mask: [batch, seq]
        (1 = real token, 0 = padding). Returns float32 logits [batch, seq, vocab]."""
        hidden, _ = self._backbone(tokens, positions, attention_mask, None)
        if self.config.scalar_head and self.is_initializing():
            self.scalar_head(hidden)
        return self._logits(hidden)

    def forward_with_cache(self, tokens, cache: Cache, positions=None, attention_mask=None, last_only: bool = False):
        """Runs `tokens [batch, seq]` at slot `cache['index']` of `cache` (see kv_cache.init_cache).
        Returns (float32 logits [batch, seq, vocab] — or [batch, 1, vocab] of the last position when `last_only`,
        which spares a prefill the LM head over every prompt position — and the updated cache)."""
        hidden, cache = self._backbone(tokens, positions, attention_mask, cache)
        if last_only:
            hidden = hidden[:, -1:]
        return self._logits(hidden), cache

    def hidden_with_cache(self, tokens, cache: Cache, positions=None, attention_mask=None):
        """Like `forward_with_cache`, but returns the final-normed hidden states `[batch, seq, hidden]` (for
        `head_logprobs`) and the updated cache."""
        return self._backbone(tokens, positions, attention_mask, cache)

    def hidden_states(self, tokens, positions=None, attention_mask=None) -> jax.Array:
        """Final-normed hidden states `[batch, seq, hidden]`."""
        return self._backbone(tokens, positions, attention_mask, None)[0]

    def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
        """The LM head on final-normed hidden states `[batch, seq, hidden]`: float32 logits `[batch, seq, vocab]`
        (run it on the positions that are scored only: the head is a large share of a small model's work)."""
        return self._logits(hidden)

    def head_logprobs(
        self, hidden: jax.Array, targets: jax.Array, temperature: float = 1.0, with_entropy: bool = False
    ) -> dict[str, jax.Array]:
        """log softmax(logits / temperature) of `targets [batch, seq]` from hidden states `[batch, seq, hidden]`,
        the LM head run in `config.vocab_chunk_size` chunks (`models.lm_head`: no [batch, seq, vocab] logits).
        Returns {'logprobs', 'is_argmax', and with `with_entropy` 'entropy'}, each [batch, seq]."""
        dtype = parse_dtype(self.config.dtype)
        tied = self.config.tie_word_embeddings
        return lm_head.chunked_head_stats(
            hidden.astype(dtype),
            self.embedding if tied else self.lm_head,
            targets,
            vocab_axis=0 if tied else 1,
            chunk_size=self.config.vocab_chunk_size,
            temperature=temperature,
            with_entropy=with_entropy,
            constrain=lambda logits: self._softcap(
                nn.with_logical_constraint(logits, ("activation_batch", "activation_length", "activation_vocab"))
            ),
        )

    def scalar(self, tokens, positions=None, attention_mask=None) -> jax.Array:
        """The scalar head (value / reward) at every position: float32 `[batch, seq]`."""
        if not self.config.scalar_head:
            raise ValueError("this model has no scalar head; build it with ModelConfig(scalar_head=True)")
        return self.scalar_head(self._backbone(tokens, positions, attention_mask, None)[0])
