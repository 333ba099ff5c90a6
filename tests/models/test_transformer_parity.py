"""Our forward pass against transformers' on the same weights: tiny random Llama / Qwen2 / Qwen3 / Mistral and the
real SmolLM2."""

import jax
import numpy as np
import pytest

from rlaif_jax import models
from rlaif_jax.models.loading import from_host_params, with_layer_layout
from rlaif_jax.models.transformer import rope_inverse_frequencies


def _tokens(seed: int, batch: int = 2, seq: int = 96, vocab: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, seq)).astype(np.int32)


def _logits(lm, tokens) -> np.ndarray:
    return np.asarray(lm.module.apply({"params": lm.params}, np.asarray(tokens, np.int32)))


def test_tiny_logits_match_hf(tiny_variant, tiny_hf_llama, torch_logits, record_diff):
    variant = tiny_variant
    path, hf_model = tiny_hf_llama(variant)
    lm = models.load(path)
    assert lm.config.tie_word_embeddings == (variant in ("llama_tied", "llama3_rope", "mistral_window", "gemma3"))
    assert lm.config.attention_bias == (variant == "qwen2_bias")
    assert (lm.config.rope_llama3_scaling is not None) == (variant == "llama3_rope")
    assert lm.config.qk_norm == (variant in ("qwen3_qk_norm", "gemma3"))
    windowed = variant in ("mistral_window", "gemma3")
    assert lm.config.sliding_window == (hf_model.config.sliding_window if windowed else None)
    tokens = _tokens(1)
    ours, ref = _logits(lm, tokens), torch_logits(hf_model, tokens)
    assert ours.dtype == np.float32 and ours.shape == (2, 96, 128)
    assert np.abs(ref).max() > 1.0  # the weights are O(1): a layout bug cannot hide behind near-uniform logits
    record_diff("logits max|ours - hf|", np.abs(ours - ref).max(), 1e-4)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_sharded_safetensors_checkpoint_loads(tiny_hf_llama, tmp_path, torch_logits, record_diff):
    """A checkpoint split over several files with model.safetensors.index.json loads like a single file."""
    _, hf_model = tiny_hf_llama("qwen2_bias")
    hf_model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("*.safetensors"))) > 2
    tokens = _tokens(6)
    diff = record_diff(
        "sharded-file logits max|ours - hf|",
        np.abs(_logits(models.load(str(tmp_path)), tokens) - torch_logits(hf_model, tokens)).max(),
        1e-4,
    )
    assert diff <= 1e-4


def test_llama3_rope_scaling_is_applied(tiny_hf_llama, record_diff):
    """The scaled inverse frequencies equal HF's buffer, and dropping the scaling changes the logits (so the parity
    test above really exercises it)."""
    path, hf_model = tiny_hf_llama("llama3_rope")
    lm = models.load(path)
    ours = rope_inverse_frequencies(lm.config.head_dim, lm.config.rope_theta, lm.config.rope_llama3_scaling)
    ref = hf_model.model.rotary_emb.inv_freq.numpy()
    record_diff("llama3 inv_freq max|ours - hf|", np.abs(ours - ref).max(), 1e-7)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)
    unscaled = rope_inverse_frequencies(lm.config.head_dim, lm.config.rope_theta, None)
    assert np.sum(~np.isclose(ours, unscaled)) >= 2  # at least the interpolated and the slowed band moved
    plain = from_host_params(jax.device_get(lm.params), lm.config.replace(rope_llama3_scaling=None))
    tokens = _tokens(2)
    assert np.abs(_logits(lm, tokens) - _logits(plain, tokens)).max() > 1e-2


# SmolLM2 logits reach ~40 and pass 30 layers in float32, so both sides carry rounding noise of order 1e-4: HF's own
# float32 logits are ~6e-5 from its float64 ones, and our scanned and unscanned layouts (the same math, compiled
# differently by XLA) differ from each other by up to 1.6e-4 on these prompts. 1e-4 is below that floor; 2.5e-4
# (7e-6 of the logit scale) is not, and any real mismatch (eps, theta, layout) is orders of magnitude larger.
SMOLLM2_LOGITS_ATOL = 2.5e-4


def test_smollm2_config_matches_hf(smollm2, smollm2_hf):
    ours, hf = smollm2.config, smollm2_hf.config
    assert (ours.vocab_size, ours.hidden_size, ours.intermediate_size) == (49152, 576, 1536)
    assert (ours.vocab_size, ours.hidden_size, ours.intermediate_size, ours.num_layers) == (
        hf.vocab_size,
        hf.hidden_size,
        hf.intermediate_size,
        hf.num_hidden_layers,
    )
    assert (ours.num_heads, ours.num_kv_heads, ours.head_dim) == (
        hf.num_attention_heads,
        hf.num_key_value_heads,
        hf.head_dim,
    )
    assert ours.rope_theta == hf.rope_parameters["rope_theta"] and ours.rope_llama3_scaling is None
    assert ours.rms_norm_eps == pytest.approx(hf.rms_norm_eps, rel=1e-7)
    assert ours.tie_word_embeddings and hf.tie_word_embeddings
    assert ours.bos_token_id == hf.bos_token_id and ours.eos_token_ids == (hf.eos_token_id,)


def test_smollm2_logits_match_hf(smollm2, smollm2_hf, chat_prompt_ids, torch_logits, record_diff):
    ids = chat_prompt_ids(smollm2.tokenizer, "What is the capital of France? Answer in one word.")
    assert ids[0] == smollm2.config.bos_token_id and len(ids) > 30
    ours, ref = _logits(smollm2, [ids]), torch_logits(smollm2_hf, [ids])
    assert ours.shape == (1, len(ids), 49152)
    assert np.abs(ref).max() > 20
    record_diff("SmolLM2 logits max|ours - hf|", np.abs(ours - ref).max(), SMOLLM2_LOGITS_ATOL)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=SMOLLM2_LOGITS_ATOL)
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))


def test_smollm2_top20_logprobs_match_hf(smollm2, smollm2_hf, chat_prompt_ids, torch_logits, record_diff):
    ids = chat_prompt_ids(smollm2.tokenizer, "Write a haiku about the sea, then explain it briefly.")
    ours = np.asarray(jax.nn.log_softmax(_logits(smollm2, [ids])[0], axis=-1))
    ref = np.asarray(jax.nn.log_softmax(torch_logits(smollm2_hf, [ids])[0], axis=-1))
    top20 = np.argsort(-ref, axis=-1)[:, :20]  # [seq, 20]: HF's 20 most likely next tokens at every position
    diffs = np.abs(np.take_along_axis(ours, top20, -1) - np.take_along_axis(ref, top20, -1))
    record_diff("SmolLM2 top-20 logprob max diff", diffs.max(), 2e-3)
    assert diffs.shape == (len(ids), 20)
    np.testing.assert_array_less(diffs.max(axis=-1), 2e-3)


@pytest.mark.parametrize("variant", ["llama_untied", "qwen2_bias"])
def test_unscanned_layers_match_scanned(variant, tiny_hf_llama, record_diff):
    path, _ = tiny_hf_llama(variant)
    scanned, unscanned = models.load(path), models.load(path, scan_layers=False)
    assert "layers" in scanned.params and "layers_0" in unscanned.params and "layers" not in unscanned.params
    tokens = _tokens(3)
    diff = np.abs(_logits(unscanned, tokens) - _logits(scanned, tokens)).max()
    record_diff("logits max|unscanned - scanned|", diff, 1e-5)
    assert diff <= 1e-5


def test_smollm2_unscanned_matches_scanned(smollm2, chat_prompt_ids, record_diff):
    unscanned = with_layer_layout(smollm2, scan_layers=False)
    assert not unscanned.config.scan_layers and "layers_29" in unscanned.params
    ids = [chat_prompt_ids(smollm2.tokenizer, "Name three primary colours.")]
    diff = np.abs(_logits(unscanned, ids) - _logits(smollm2, ids)).max()
    record_diff("SmolLM2 logits max|unscanned - scanned|", diff, SMOLLM2_LOGITS_ATOL)
    assert diff <= SMOLLM2_LOGITS_ATOL


@pytest.mark.parametrize("variant", ["llama_tied", "qwen2_bias"])
def test_bfloat16_params_close_to_float32(variant, tiny_hf_llama, record_diff):
    path, _ = tiny_hf_llama(variant)
    f32, bf16 = models.load(path), models.load(path, dtype="bfloat16")
    assert {leaf.dtype for leaf in jax.tree.leaves(bf16.params)} == {np.dtype(jax.numpy.bfloat16)}
    tokens = _tokens(4, batch=4, seq=64)
    low, full = _logits(bf16, tokens), _logits(f32, tokens)
    assert low.dtype == np.float32  # logits always come out in float32
    assert np.isfinite(low).all()
    agreement = record_diff("bf16 argmax agreement rate", np.mean(low.argmax(-1) == full.argmax(-1)), 0.9, ">")
    assert agreement > 0.9
    # bfloat16 has an 8-bit mantissa: errors of a few percent of the logit scale, not garbage.
    relative = np.abs(low - full).max() / np.abs(full).max()
    record_diff("bf16 logits max rel err", relative, 0.1)
    assert relative < 0.1


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_changes_neither_logits_nor_gradients(remat, tiny_hf_llama, record_diff):
    path, _ = tiny_hf_llama("llama_untied")
    plain, rematted = models.load(path), models.load(path, remat=remat)
    tokens = _tokens(5, batch=2, seq=32)

    def loss(lm):
        def f(params):
            logits = lm.module.apply({"params": params}, tokens)
            return -jax.numpy.mean(jax.nn.log_softmax(logits[:, :-1])[..., 0])

        return jax.jit(jax.value_and_grad(f))(lm.params)

    (value, grads), (value_remat, grads_remat) = loss(plain), loss(rematted)
    assert abs(float(value) - float(value_remat)) <= 1e-6
    worst = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_remat), strict=True)
    )
    record_diff(f"grads max|remat={remat} - none|", worst, 1e-6)
    assert worst <= 1e-6


def test_mistral_sliding_window_matters_and_matches_hf_with_left_padding(tiny_hf_llama, torch_logits, record_diff):
    """The window changes the logits (so the parity above tests it), and left-padded rows match HF's masked ones."""
    path, hf_model = tiny_hf_llama("mistral_window")
    lm = models.load(path)
    tokens = _tokens(2, seq=40)
    mask = np.ones_like(tokens, bool)
    mask[0, :13] = False  # row 0 is left-padded
    windowless = lm.replace(module=models.Transformer(lm.config.replace(sliding_window=None)))
    assert np.abs(_logits(windowless, tokens) - _logits(lm, tokens)).max() > 1e-2
    ours = np.asarray(lm.module.apply({"params": lm.params}, tokens, attention_mask=mask))
    ref = torch_logits(hf_model, tokens, attention_mask=mask)
    diff = np.abs(ours - ref)[mask].max()  # padded positions' outputs are not used
    record_diff("Mistral left-padded logits max|ours - hf|", diff, 1e-4)
    assert diff <= 1e-4
