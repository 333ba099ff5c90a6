"""LoRA adapters in the model: exact at start, merged export that transformers reads, shardings, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from rlaif_jax import models, sharding
from rlaif_jax.models import lora
from rlaif_jax.models.loading import param_shardings, with_layer_layout, with_new_adapters
from rlaif_jax.models.setup import build_model

TOKENS = np.random.default_rng(4).integers(0, 128, size=(2, 24)).astype(np.int32)
RANK = 4


def _logits(lm, params=None, **kwargs):
    return np.asarray(lm.module.apply({"params": lm.params if params is None else params}, TOKENS, **kwargs))


def _with_random_adapters(lm, seed=1, scale=0.3):
    """`lm` with every adapter (B included) random, so the adapters change the outputs."""
    base, adapters = lora.split(lm.params)
    rng = np.random.default_rng(seed)
    adapters = jax.tree.map(lambda x: jnp.asarray(scale * rng.standard_normal(x.shape), x.dtype), adapters)
    return lm.replace(params=lora.combine(base, adapters))


def test_fresh_adapters_leave_a_loaded_model_exactly_as_it_was(tiny_hf_llama):
    directory, _ = tiny_hf_llama("qwen3_qk_norm")
    base = models.load(directory)
    adapted = models.load(directory, lora=dict(rank=RANK, alpha=8.0))
    assert adapted.config.lora_rank == RANK and not base.config.lora_rank
    np.testing.assert_array_equal(_logits(adapted), _logits(base))
    _, adapters = lora.split(adapted.params)
    assert len(jax.tree.leaves(adapters)) == 14  # A and B for each of q, k, v, o, gate, up, down
    # Adding adapters to a model copies none of its weights.
    again = with_new_adapters(base, lora.config_fields(dict(rank=RANK)))
    base_again, _ = lora.split(again.params)
    for ours, theirs in zip(jax.tree.leaves(base_again), jax.tree.leaves(base.params), strict=True):
        assert ours is theirs


@pytest.mark.parametrize("variant", ["llama_untied", "gemma3"])
def test_save_hf_merges_adapters_and_transformers_reads_the_same_logits(variant, tiny_hf_llama, tmp_path):
    directory, _ = tiny_hf_llama(variant)
    lm = _with_random_adapters(models.load(directory, lora=dict(rank=RANK, alpha=8.0)))
    base_logits = _logits(models.load(directory))
    ours = _logits(lm)
    assert np.abs(ours - base_logits).max() > 0.1  # the adapters matter
    models.save_hf(lm, str(tmp_path))
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).float().eval()
    with torch.no_grad():
        theirs = hf_model(torch.as_tensor(TOKENS, dtype=torch.long)).logits.numpy()
    # Gemma's scaled embeddings and (1 + w) norms grow float32 rounding (as in test_save_hf).
    bound = 5e-5 if variant == "gemma3" else 2e-5
    np.testing.assert_allclose(theirs, ours, atol=bound)
    reloaded = models.load(str(tmp_path))
    assert not reloaded.config.lora_rank
    np.testing.assert_allclose(_logits(reloaded), ours, atol=bound)


def test_merge_matches_the_adapter_path_in_both_layer_layouts():
    config = models.ModelConfig(lora_rank=RANK, lora_targets=("q", "v", "o", "down"), tie_word_embeddings=False)
    lm = _with_random_adapters(models.init_random(config))
    plain = models.Transformer(config.replace(lora_rank=0))
    np.testing.assert_allclose(
        np.asarray(plain.apply({"params": lora.merge(lm.params, config)}, TOKENS)), _logits(lm), atol=2e-5
    )
    unscanned = with_layer_layout(lm, scan_layers=False)
    np.testing.assert_allclose(_logits(unscanned), _logits(lm), atol=2e-5)
    plain_unscanned = models.Transformer(unscanned.config.replace(lora_rank=0))
    merged = lora.merge(unscanned.params, unscanned.config)
    np.testing.assert_allclose(np.asarray(plain_unscanned.apply({"params": merged}, TOKENS)), _logits(lm), atol=2e-5)
    # Only the targeted projections have adapters.
    _, adapters = lora.split(lm.params)
    assert set(adapters["layers"]["attention"]) == {f"lora_{t}_{m}" for t in ("q", "v", "o") for m in "ab"}
    assert set(adapters["layers"]["mlp"]) == {"lora_down_a", "lora_down_b"}


def test_adapters_are_sharded_like_the_weights_they_adapt():
    mesh = sharding.make_mesh(1, 2, 2, devices=jax.devices()[:4])
    lm = build_model(_model_block(rank=RANK), mesh, None)
    specs = jax.tree.map(lambda s: tuple(s.spec), param_shardings(lm.config, mesh))
    attention, mlp = specs["layers"]["attention"], specs["layers"]["mlp"]
    assert attention["lora_q_a"] == (None, "fsdp", None) and attention["qkv_proj"][:2] == (None, "fsdp")  # hidden in
    assert attention["lora_q_b"][2] == "tensor" and attention["qkv_proj"][2] == "tensor"  # kv heads out
    assert attention["lora_o_a"][1] == "tensor" and attention["lora_o_b"][2] == "fsdp"
    assert mlp["lora_up_b"][2] == "tensor" and mlp["lora_down_a"][1] == "tensor" and mlp["lora_down_b"][2] == "fsdp"
    for leaf, spec in zip(jax.tree.leaves(lm.params), jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, tuple))):
        assert tuple(leaf.sharding.spec) == spec


def _model_block(**lora_settings):
    from rlaif_jax import config_defaults

    block = config_defaults.model("tiny")
    block.lora.update(lora_settings)
    return block


def test_dropout_applies_only_with_a_dropout_rng():
    config = models.ModelConfig(lora_rank=RANK, lora_dropout=0.5)
    lm = _with_random_adapters(models.init_random(config))
    without = _logits(lm)
    np.testing.assert_array_equal(without, _logits(lm))
    dropped = _logits(lm, rngs={"dropout": jax.random.key(0)})
    assert np.abs(dropped - without).max() > 1e-3
    np.testing.assert_array_equal(dropped, _logits(lm, rngs={"dropout": jax.random.key(0)}))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(rank=4, targets=("q", "fc1")), r"`targets`: 'fc1' not in Llama layer: q, k, v, o, gate, up, down"),
        (dict(rnak=4), r"config.model.lora: unknown key\(s\) \['rnak'\]"),
        (dict(rank=-1), r"rank=-1 \(>= 0, 0 = off\)"),
        (dict(rank=4, dropout=1.0), r"dropout=1.0 \(in \[0, 1\)\)"),
    ],
)
def test_bad_lora_settings_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        build_model(_model_block(**settings), None, None)


def test_a_gemma_target_error_names_the_family():
    with pytest.raises(ValueError, match=r"'gate_proj' not in Gemma-3 layer"):
        models.ModelConfig(model_type="gemma3_text", lora_rank=2, lora_targets=("gate_proj",))


def test_sft_and_reward_losses_apply_lora_dropout_from_their_rng():
    from rlaif_jax.losses.reward_model import pairwise_reward_loss_fn
    from rlaif_jax.losses.sft import sft_loss_fn

    lm = _with_random_adapters(
        models.init_random(models.ModelConfig(lora_rank=RANK, lora_dropout=0.3, scalar_head=True))
    )
    mask = np.ones_like(TOKENS)
    sft = sft_loss_fn(lm.module)
    batch = {"tokens": TOKENS, "attention_mask": mask, "loss_mask": mask}
    first, second = (float(sft(lm.params, batch, jax.random.key(k), None)[0]) for k in (0, 1))
    assert first != second and first == float(sft(lm.params, batch, jax.random.key(0), None)[0])
    pairs = {
        "chosen_tokens": TOKENS,
        "chosen_attention_mask": mask,
        "rejected_tokens": TOKENS[::-1],
        "rejected_attention_mask": mask,
        "margin": np.zeros(2, np.float32),
    }
    reward = pairwise_reward_loss_fn(lm.module)
    head = {"kernel": jnp.asarray(np.random.default_rng(2).standard_normal(lm.config.hidden_size), jnp.float32)}
    lm = lm.replace(params={**lm.params, "scalar_head": {**lm.params["scalar_head"], **head}})
    assert float(reward(lm.params, pairs, jax.random.key(0), None)[0]) != float(
        reward(lm.params, pairs, jax.random.key(1), None)[0]
    )
    # Without LoRA dropout the rng changes nothing.
    plain = _with_random_adapters(models.init_random(models.ModelConfig(lora_rank=RANK)))
    sft_plain = sft_loss_fn(plain.module)
    assert float(sft_plain(plain.params, batch, jax.random.key(0), None)[0]) == float(
        sft_plain(plain.params, batch, jax.random.key(1), None)[0]
    )
