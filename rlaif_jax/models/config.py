"""The architecture description of a decoder (Llama, Qwen2, Qwen3, Mistral, Gemma 3 text), and its translation to and
from HF `config.json`."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral", "gemma3_text")
HF_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "mistral": "MistralForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
}
FAMILY_NAMES = {"llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3", "mistral": "Mistral", "gemma3_text": "Gemma-3"}
LAYER_TYPES = ("sliding_attention", "full_attention")
ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}  # HF name -> ours
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
REMAT_POLICIES = ("none", "full", "dots")
# 'auto': cuDNN flash attention for half-precision forward passes on GPU, splash attention on TPU, else XLA.
ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "cudnn", "splash")


def parse_dtype(name: str, *, key: str = "dtype") -> Any:
    """Returns the jnp dtype for `name` ('float32', 'bfloat16', 'float16'); a clear error names `key` otherwise."""
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"{key}={name!r} is not a dtype we support; expected one of {sorted(DTYPES)}")
    return DTYPES[name]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of one decoder-only transformer (Llama, SmolLM, Qwen2, Qwen3, Mistral layouts).

    Frozen and hashable, so a module built from it can be a static argument of `jax.jit`.
    """

    vocab_size: int = 256
    hidden_size: int = 32  # d_model
    intermediate_size: int = 64  # SwiGLU hidden width
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2  # < num_heads gives GQA, 1 gives MQA
    head_dim: int = 8
    rope_theta: float = 10000.0
    # Llama-3 RoPE scaling: (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings) or None.
    rope_llama3_scaling: tuple[float, float, float, int] | None = None
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True
    attention_bias: bool = False  # q/k/v projection biases, as in Qwen2
    qk_norm: bool = False  # RMSNorm over head_dim of every query and key head before RoPE, as in Qwen3
    sliding_window: int | None = None  # each token attends to itself and the sliding_window - 1 before (Mistral)
    # Gemma 3. Per layer 'sliding_attention' (with `sliding_window`) or 'full_attention'; None = all layers alike.
    layer_types: tuple[str, ...] | None = None
    rope_local_theta: float | None = None  # RoPE theta of the sliding layers; None = rope_theta
    rope_linear_factor: float | None = None  # linear RoPE scaling (inv_freq / factor) of the other layers
    query_pre_attn_scalar: int | None = None  # attention scale query_pre_attn_scalar ** -0.5; None: head_dim
    activation: str = "silu"  # gated MLP: 'silu' (SwiGLU) or 'gelu_tanh' (GeGLU)
    norm_plus_one: bool = False  # RMSNorm scales by (1 + weight), computed in float32; weights start at 0
    sandwich_norms: bool = False  # also norms on the attention and MLP outputs, before the residual adds
    embedding_scale: bool = False  # token embeddings times sqrt(hidden_size)
    final_logit_softcap: float | None = None  # logits -> cap * tanh(logits / cap)
    model_type: str = "llama"
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    dtype: str = "float32"  # activations; matmuls always accumulate in float32
    param_dtype: str = "float32"
    scan_layers: bool = (
        True  # stacked layers under one nn.scan (fast compile); False = one tree per layer (fast CPU decode)
    )
    remat: str = "none"  # 'none', 'full' (recompute each layer) or 'dots' (keep matmul outputs)
    attention: str = "auto"  # jax.nn.dot_product_attention implementation, see ATTENTION_IMPLEMENTATIONS
    vocab_chunk_size: int = 16384  # LM-head columns per chunk in the losses' log-probs (models/lm_head.py); 0 = all
    scalar_head: bool = False  # adds a [hidden] -> 1 head for values / rewards
    # LoRA adapters (models/lora.py): rank 0 = off; scale alpha / rank; dropout on the adapters' input in training
    # passes (only where a 'dropout' rng is given: the SFT and reward-model losses; DPO and RL compare passes and
    # give none); targets among q, k, v, o, gate, up, down.
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")

    def __post_init__(self):
        # A config read back from JSON (a stage's config.json) holds lists; the module must stay hashable.
        object.__setattr__(self, "eos_token_ids", tuple(int(i) for i in self.eos_token_ids))
        if self.layer_types is not None:
            object.__setattr__(self, "layer_types", tuple(str(t) for t in self.layer_types))
            if len(self.layer_types) != self.num_layers or not set(self.layer_types) <= set(LAYER_TYPES):
                raise ValueError(
                    f"layer_types={self.layer_types}: expected {self.num_layers} entries, each one of {LAYER_TYPES}"
                )
            if "sliding_attention" in self.layer_types and self.sliding_window is None:
                raise ValueError("layer_types has sliding_attention layers but sliding_window is None")
        if self.activation not in ("silu", "gelu_tanh"):
            raise ValueError(f"activation={self.activation!r}; expected 'silu' or 'gelu_tanh'")
        parse_dtype(self.dtype, key="dtype")
        parse_dtype(self.param_dtype, key="param_dtype")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r}; expected one of {REMAT_POLICIES}")
        if self.attention not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention={self.attention!r}; expected one of {ATTENTION_IMPLEMENTATIONS}")
        if self.vocab_chunk_size < 0:
            raise ValueError(f"vocab_chunk_size={self.vocab_chunk_size}; expected >= 0 (0 = the whole vocabulary)")
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"unknown architecture {self.model_type!r}; supported: {SUPPORTED_MODEL_TYPES}")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window={self.sliding_window}; expected None (off) or >= 1")
        object.__setattr__(self, "lora_targets", tuple(str(t) for t in self.lora_targets))
        if self.lora_rank < 0 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(
                f"lora: rank={self.lora_rank} (>= 0, 0 = off), alpha={self.lora_alpha} (> 0), "
                f"dropout={self.lora_dropout} (in [0, 1)) out of range"
            )
        if self.lora_rank:
            from rlaif_jax.models import lora

            lora.check_targets(self.lora_targets, FAMILY_NAMES.get(self.model_type, self.model_type))
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")

    def replace(self, **changes) -> ModelConfig:
        """Returns a copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def sliding_layers(self) -> tuple[bool, ...]:
        """Per layer: does it attend through the sliding window? (`layer_types`, or every layer when only
        `sliding_window` is set.)"""
        if self.layer_types is not None:
            return tuple(t == "sliding_attention" for t in self.layer_types)
        return (self.sliding_window is not None,) * self.num_layers

    @property
    def num_params(self) -> int:
        """Parameter count, embeddings included (an untied LM head counted once more)."""
        attention = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        if self.attention_bias:
            attention += self.head_dim * (self.num_heads + 2 * self.num_kv_heads)
        if self.qk_norm:
            attention += 2 * self.head_dim
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attention + mlp + (4 if self.sandwich_norms else 2) * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + embeddings + self.hidden_size


# config.model fields that set how the model runs rather than what it is, with the defaults of configs written
# before they existed (a stage's recorded config.json re-runs as it ran; rerun_guard.LAYOUT_KEYS reads them too).
RUNTIME_DEFAULTS = dict(
    dtype=ModelConfig.dtype,
    param_dtype="",  # '' = dtype
    remat=ModelConfig.remat,
    attention=ModelConfig.attention,
    vocab_chunk_size=ModelConfig.vocab_chunk_size,
    scan_layers=ModelConfig.scan_layers,
    scalar_head=ModelConfig.scalar_head,
)


def _rope_settings(hf: dict[str, Any]) -> tuple[float, tuple | None]:
    """Reads rope theta and Llama-3 scaling from either the transformers<5 or >=5 spelling."""
    rope = dict(hf.get("rope_parameters") or {})
    scaling = hf.get("rope_scaling") or {}
    rope = {**scaling, **rope}
    theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type in (None, "default"):
        return theta, None
    if rope_type == "llama3":
        return theta, (
            float(rope["factor"]),
            float(rope["low_freq_factor"]),
            float(rope["high_freq_factor"]),
            int(rope["original_max_position_embeddings"]),
        )
    raise ValueError(f"rope type {rope_type!r} is not supported; expected 'default' or 'llama3'")


def from_hf_dict(hf: dict[str, Any], **overrides) -> ModelConfig:
    """Builds a ModelConfig from the dict of an HF `config.json`; `overrides` set dtype, remat and the like."""
    model_type = hf.get("model_type")
    if model_type == "gemma3":
        raise ValueError(
            "model_type 'gemma3' is the multimodal Gemma 3 (Gemma3ForConditionalGeneration); supported is the "
            "text model 'gemma3_text' (Gemma3ForCausalLM, e.g. Gemma 3 270M / 1B)"
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"unknown architecture {model_type!r} (config.json model_type, architectures="
            f"{hf.get('architectures')}); supported: {SUPPORTED_MODEL_TYPES}"
        )
    if hf.get("use_sliding_window") and model_type in ("qwen2", "qwen3"):
        raise ValueError(
            f"{model_type} with use_sliding_window=True (sliding attention in some layers only) is not supported"
        )
    theta, llama3 = _rope_settings(hf) if model_type != "gemma3_text" else (1e6, None)
    eos = hf.get("eos_token_id")
    eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (int(eos),))
    num_heads = int(hf["num_attention_heads"])
    values = dict(
        vocab_size=int(hf["vocab_size"]),
        hidden_size=int(hf["hidden_size"]),
        intermediate_size=int(hf["intermediate_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=num_heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
        head_dim=int(hf.get("head_dim") or hf["hidden_size"] // num_heads),
        rope_theta=theta,
        rope_llama3_scaling=llama3,
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),  # HF default
        attention_bias=bool(hf.get("attention_bias", model_type == "qwen2")),
        qk_norm=model_type == "qwen3",
        sliding_window=int(hf["sliding_window"]) if model_type == "mistral" and hf.get("sliding_window") else None,
        model_type=model_type,
        bos_token_id=hf.get("bos_token_id"),
        eos_token_ids=eos_ids,
        pad_token_id=hf.get("pad_token_id"),
        activation=_activation(hf),
    )
    if model_type == "gemma3_text":
        values.update(_gemma3_fields(hf))
    values.update(overrides)
    return ModelConfig(**values)


def _activation(hf: dict[str, Any]) -> str:
    name = hf.get("hidden_activation") or hf.get("hidden_act") or "silu"
    if name not in ACTIVATIONS:
        raise ValueError(f"hidden activation {name!r} is not supported; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _gemma3_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """The Gemma 3 text model's fields: sliding / full layers with their own RoPE, QK-norm, sandwich norms,
    (1 + w) norms, scaled embeddings, query_pre_attn_scalar and the optional final soft-cap."""
    for key in ("attn_logit_softcapping", "use_bidirectional_attention"):
        if hf.get(key):
            raise ValueError(f"Gemma 3 with {key}={hf[key]!r} is not supported")
    num_layers = int(hf["num_hidden_layers"])
    layer_types = hf.get("layer_types")
    if not layer_types:  # older configs: every `sliding_window_pattern`-th layer is global
        pattern = int(hf.get("sliding_window_pattern", hf.get("_sliding_window_pattern", 6)))
        layer_types = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(num_layers)]
    rope = hf.get("rope_parameters") or {}
    if "full_attention" in rope:  # transformers >= 5: RoPE per layer type
        full, local = dict(rope["full_attention"] or {}), dict(rope.get("sliding_attention") or {})
    else:  # transformers < 5: rope_theta / rope_scaling for global layers, rope_local_base_freq for local ones
        full = {"rope_theta": hf.get("rope_theta", 1e6), **(hf.get("rope_scaling") or {})}
        local = {"rope_theta": hf.get("rope_local_base_freq", 1e4)}
    linear = None
    for kind, params in (("full_attention", full), ("sliding_attention", local)):
        rope_type = params.get("rope_type", params.get("type", "default"))
        if rope_type == "linear" and kind == "full_attention":
            linear = float(params["factor"])
        elif rope_type not in (None, "default"):
            raise ValueError(f"Gemma 3 {kind} rope type {rope_type!r} is not supported ('default', 'linear')")
    return dict(
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        qk_norm=True,
        sliding_window=int(hf["sliding_window"]),
        layer_types=tuple(layer_types),
        rope_theta=float(full.get("rope_theta", 1e6)),
        rope_llama3_scaling=None,
        rope_local_theta=float(local.get("rope_theta", 1e4)),
        rope_linear_factor=linear,
        query_pre_attn_scalar=int(hf.get("query_pre_attn_scalar") or hf["head_dim"]),
        norm_plus_one=True,
        sandwich_norms=True,
        embedding_scale=True,
        final_logit_softcap=None if hf.get("final_logit_softcapping") is None else float(hf["final_logit_softcapping"]),
    )


def to_hf_dict(config: ModelConfig) -> dict[str, Any]:
    """The HF `config.json` dict that `transformers.AutoConfig` reads back as the same architecture."""
    rope: dict[str, Any] = {"rope_theta": config.rope_theta, "rope_type": "default"}
    if config.rope_llama3_scaling is not None:
        factor, low, high, original = config.rope_llama3_scaling
        rope.update(
            rope_type="llama3",
            factor=factor,
            low_freq_factor=low,
            high_freq_factor=high,
            original_max_position_embeddings=original,
        )
    hf = {
        "architectures": [HF_ARCHITECTURES[config.model_type]],
        "model_type": config.model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": config.tie_word_embeddings,
        "rope_theta": config.rope_theta,
        "rope_parameters": rope,
        "rope_scaling": None if config.rope_llama3_scaling is None else rope,
        "torch_dtype": config.param_dtype,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": list(config.eos_token_ids)
        if len(config.eos_token_ids) > 1
        else (config.eos_token_ids[0] if config.eos_token_ids else None),
        "pad_token_id": config.pad_token_id,
    }
    if config.model_type == "llama":
        hf.update(attention_bias=config.attention_bias, mlp_bias=False)
    if config.model_type == "qwen3":
        hf.update(attention_bias=config.attention_bias, use_sliding_window=False)
    if config.model_type == "mistral":
        hf.update(sliding_window=config.sliding_window)
    if config.model_type == "gemma3_text":
        full = {"rope_type": "default", "rope_theta": config.rope_theta}
        if config.rope_linear_factor is not None:
            full = {"rope_type": "linear", "rope_theta": config.rope_theta, "factor": config.rope_linear_factor}
        local = {"rope_type": "default", "rope_theta": config.rope_local_theta or config.rope_theta}
        for key in ("rope_theta", "rope_scaling", "hidden_act"):
            hf.pop(key)
        hf.update(
            hidden_activation="gelu_pytorch_tanh",
            sliding_window=config.sliding_window,
            layer_types=list(config.layer_types or ["full_attention"] * config.num_layers),
            rope_parameters={"full_attention": full, "sliding_attention": local},
            query_pre_attn_scalar=int(config.query_pre_attn_scalar or config.head_dim),  # transformers wants an int
            final_logit_softcapping=config.final_logit_softcap,
            attn_logit_softcapping=None,
            attention_bias=False,
            use_bidirectional_attention=False,
        )
    return hf
