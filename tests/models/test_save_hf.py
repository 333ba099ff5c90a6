"""`models.save_hf` round trips: transformers reads back the same model, and so does `models.load`."""

import json
import os

import jax
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers
from safetensors import safe_open

from rlaif_jax import models
from rlaif_jax.models.loading import from_host_params, with_layer_layout

TINY = {
    "llama_tied": dict(model_type="llama", tie_word_embeddings=True),
    "llama_untied": dict(model_type="llama", tie_word_embeddings=False),
    "qwen2_bias": dict(model_type="qwen2", tie_word_embeddings=False, attention_bias=True),
    "qwen3_qk_norm": dict(model_type="qwen3", tie_word_embeddings=False, qk_norm=True),
    "mistral_window": dict(model_type="mistral", tie_word_embeddings=True, sliding_window=6),
    "gemma3": dict(
        model_type="gemma3_text",
        num_layers=3,
        qk_norm=True,
        sliding_window=6,
        layer_types=("sliding_attention", "sliding_attention", "full_attention"),
        rope_theta=1e6,
        rope_local_theta=1e4,
        rope_linear_factor=8.0,
        query_pre_attn_scalar=16,
        activation="gelu_tanh",
        norm_plus_one=True,
        sandwich_norms=True,
        embedding_scale=True,
        final_logit_softcap=30.0,
    ),
}


def _random_lm(seed: int = 0, **fields):
    """A tiny model whose every parameter (norm scales and q/k/v biases included) is random and O(1)."""
    values = dict(vocab_size=128, max_position_embeddings=256, bos_token_id=1, eos_token_ids=(2,), pad_token_id=0)
    config = models.ModelConfig(**{**values, **fields})
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        noise = rng.standard_normal(leaf.shape).astype(np.float32)
        return 1.0 + 0.1 * noise if "norm" in jax.tree_util.keystr(path) else 0.2 * noise

    host = jax.tree_util.tree_map_with_path(draw, jax.device_get(models.init_random(config).params))
    return from_host_params(host, config)


def _logits(lm, tokens):
    return np.asarray(lm.module.apply({"params": lm.params}, np.asarray(tokens, np.int32)))


def _hf_logits(model, tokens):
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.float().numpy()


def _assert_params_identical(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


TOKENS = np.random.default_rng(9).integers(0, 128, size=(2, 40))


@pytest.mark.parametrize("variant", list(TINY))
def test_tiny_round_trip(variant, tmp_path, record_diff):
    lm = _random_lm(**TINY[variant])
    models.save_hf(lm, str(tmp_path))
    assert {"config.json", "model.safetensors"} <= set(os.listdir(tmp_path))
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))

    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).float().eval()
    expected_class = models.config.HF_ARCHITECTURES[lm.config.model_type]
    assert type(hf_model).__name__ == expected_class
    assert hf_model.config.tie_word_embeddings == lm.config.tie_word_embeddings
    ours = _logits(lm, TOKENS)
    # Gemma's scaled embeddings and (1 + w) sandwich norms grow float32 rounding: HF's own float32 logits are 2.1e-5
    # from its float64 ones on this model (ours 1.9e-5), so the two float32 results differ by up to twice that.
    bound = 5e-5 if variant == "gemma3" else 1e-5
    diff = record_diff("logits max|hf(saved) - ours|", np.abs(_hf_logits(hf_model, TOKENS) - ours).max(), bound)
    assert diff <= bound
    assert np.abs(ours).max() > 1.0

    reloaded = models.load(str(tmp_path))
    assert reloaded.config == lm.config
    assert reloaded.tokenizer is None
    _assert_params_identical(reloaded.params, lm.params)


@pytest.mark.parametrize(
    "variant", ["llama_untied", "llama3_rope", "qwen2_bias", "qwen3_qk_norm", "mistral_window", "gemma3"]
)
def test_hf_checkpoint_survives_load_then_save(variant, tiny_hf_llama, tmp_path):
    """HF weights -> models.load -> save_hf gives back HF's state dict bit for bit (rope scaling included)."""
    source, hf_model = tiny_hf_llama(variant)
    models.save_hf(models.load(source), str(tmp_path))
    again = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).float().eval()
    original = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    saved = {k: v.numpy() for k, v in again.state_dict().items()}
    assert saved.keys() == original.keys()
    for key in original:
        np.testing.assert_array_equal(saved[key], original[key], err_msg=key)
    assert getattr(again.config, "rope_parameters", None) == getattr(hf_model.config, "rope_parameters", None)
    np.testing.assert_array_equal(_hf_logits(again, TOKENS), _hf_logits(hf_model, TOKENS))


def test_unscanned_model_saves_the_same_checkpoint(tmp_path):
    lm = _random_lm(seed=3, tie_word_embeddings=False)
    models.save_hf(lm, str(tmp_path / "scanned"))
    models.save_hf(with_layer_layout(lm, scan_layers=False), str(tmp_path / "unscanned"))
    scanned = safetensors.numpy.load_file(str(tmp_path / "scanned" / "model.safetensors"))
    unscanned = safetensors.numpy.load_file(str(tmp_path / "unscanned" / "model.safetensors"))
    assert scanned.keys() == unscanned.keys()
    for key in scanned:
        np.testing.assert_array_equal(unscanned[key], scanned[key], err_msg=key)
    with open(tmp_path / "scanned" / "config.json") as a, open(tmp_path / "unscanned" / "config.json") as b:
        assert json.load(a) == json.load(b)


def test_bfloat16_round_trip_is_bit_exact(tmp_path):
    lm = _random_lm(seed=1, dtype="bfloat16", param_dtype="bfloat16")
    models.save_hf(lm, str(tmp_path))
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["torch_dtype"] == "bfloat16"
    reloaded = models.load(str(tmp_path), dtype="bfloat16")
    _assert_params_identical(reloaded.params, lm.params)


def _with_random_scalar_head(seed: int):
    lm = _random_lm(seed=seed, scalar_head=True)
    head = {"kernel": np.linspace(-1, 1, 32, dtype=np.float32), "bias": np.float32(0.5)}
    return lm.replace(params={**lm.params, "scalar_head": jax.tree.map(jax.numpy.asarray, head)})


def test_scalar_head_saved_beside_hf_weights(tmp_path):
    lm = _with_random_scalar_head(seed=2)
    models.save_hf(lm, str(tmp_path))
    with safe_open(str(tmp_path / "scalar_head.safetensors"), framework="numpy") as f:
        np.testing.assert_array_equal(f.get_tensor("kernel"), np.linspace(-1, 1, 32, dtype=np.float32))
        assert float(f.get_tensor("bias").reshape(-1)[0]) == 0.5
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).float().eval()
    np.testing.assert_allclose(_hf_logits(hf_model, TOKENS), _logits(lm, TOKENS), rtol=0, atol=1e-5)


def test_scalar_head_reloads(tmp_path):
    lm = _with_random_scalar_head(seed=2)
    models.save_hf(lm, str(tmp_path))
    reloaded = models.load(str(tmp_path), scalar_head=True)
    _assert_params_identical(reloaded.params, lm.params)
    values = reloaded.module.apply({"params": reloaded.params}, TOKENS, method=reloaded.module.scalar)
    expected = lm.module.apply({"params": lm.params}, TOKENS, method=lm.module.scalar)
    np.testing.assert_array_equal(np.asarray(values), np.asarray(expected))
    assert np.abs(np.asarray(values)).max() > 0.1


@pytest.fixture(scope="module")
def smollm2_saved(smollm2, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("smollm2_hf"))
    models.save_hf(smollm2, directory)
    return directory


def test_smollm2_save_hf_logits(smollm2, smollm2_hf, smollm2_saved, chat_prompt_ids, record_diff):
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(smollm2_saved, dtype=torch.float32).eval()
    ids = [chat_prompt_ids(smollm2.tokenizer, "Tell me a fun fact about octopuses.")]
    saved, reference = _hf_logits(hf_model, ids), _hf_logits(smollm2_hf, ids)
    # The same engine on the same weights: only the export can make these differ.
    diff = record_diff("SmolLM2 logits max|hf(saved) - hf(gguf)|", np.abs(saved - reference).max(), 1e-4)
    assert diff <= 1e-4
    ours = _logits(smollm2, ids)
    record_diff("SmolLM2 logits max|hf(saved) - ours|", np.abs(saved - ours).max(), 2.5e-4)
    np.testing.assert_allclose(saved, ours, rtol=0, atol=2.5e-4)  # float32 noise floor, see test_transformer_parity


def test_smollm2_save_hf_tokenizer(smollm2, smollm2_saved, chat_prompt_ids):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_saved)
    text = "Hello, world! Tokenizers should round-trip: naïve café, 12345, <|im_end|>."
    assert tokenizer(text)["input_ids"] == smollm2.tokenizer(text)["input_ids"]
    assert tokenizer.chat_template and tokenizer.chat_template == smollm2.tokenizer.chat_template
    assert chat_prompt_ids(tokenizer, "Hi there") == chat_prompt_ids(smollm2.tokenizer, "Hi there")
    assert tokenizer.eos_token_id == smollm2.config.eos_token_ids[0]


def test_smollm2_save_hf_reloads(smollm2, smollm2_saved):
    reloaded = models.load(smollm2_saved)
    assert reloaded.config == smollm2.config
    assert reloaded.tokenizer is not None and len(reloaded.tokenizer) == len(smollm2.tokenizer)
    _assert_params_identical(reloaded.params, smollm2.params)
