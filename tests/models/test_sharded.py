"""Sharded models (8 fake CPU devices, see conftest) compute what the one-device model computes."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rlaif_jax import models, sampling, sharding
from rlaif_jax.models.loading import param_shardings

MESHES = {  # (data, fsdp, tensor)
    "1x1x1": (1, 1, 1),
    "2x1x4": (2, 1, 4),
    "1x4x2": (1, 4, 2),
}
CONFIG = models.ModelConfig(vocab_size=128, max_position_embeddings=256, eos_token_ids=(2,), pad_token_id=0)
PROMPTS = [[5, 17, 99], [3, 44, 12, 90, 61, 7, 120], [8, 8, 31, 77, 100, 4, 56, 19, 23, 71, 9]]


def _mesh(name):
    data, fsdp, tensor = MESHES[name]
    devices = jax.devices()[: data * fsdp * tensor]
    assert len(devices) == data * fsdp * tensor, "conftest must set --xla_force_host_platform_device_count=8"
    return sharding.make_mesh(data=data, fsdp=fsdp, tensor=tensor, devices=devices)


def _logits(lm, tokens):
    with sharding.activate(lm.mesh, lm.rules):
        return np.asarray(jax.jit(lambda p, t: lm.module.apply({"params": p}, t))(lm.params, tokens))


def _leaves(tree):
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def unsharded(make_tiny_lm):
    return make_tiny_lm(seed=4)


def test_eight_host_devices():
    assert jax.device_count() == 8 and jax.default_backend() == "cpu"


@pytest.fixture(scope="module")
def unsharded_init():
    return _leaves(models.init_random(CONFIG, seed=4).params)


@pytest.mark.parametrize("mesh_name", list(MESHES))
def test_init_is_identical_on_every_mesh(mesh_name, unsharded_init):
    reference = unsharded_init
    placed = _leaves(models.init_random(CONFIG, seed=4, mesh=_mesh(mesh_name)).params)
    assert placed.keys() == reference.keys()
    for path, leaf in placed.items():
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(reference[path]), err_msg=path)


@pytest.mark.parametrize("mesh_name", ["2x1x4", "1x4x2"])
def test_params_have_the_requested_shardings(mesh_name):
    mesh = _mesh(mesh_name)
    data, fsdp, tensor = MESHES[mesh_name]
    lm = models.init_random(CONFIG, mesh=mesh)
    requested = _leaves(param_shardings(CONFIG, mesh))
    for path, leaf in _leaves(lm.params).items():
        assert leaf.sharding.mesh == mesh, path
        assert leaf.sharding.spec == requested[path].spec, path
        assert len(leaf.addressable_shards) == 8
    # Spelled out for a few parameters (default rules: embed -> fsdp, mlp / vocab / heads -> tensor, layers -> None).
    layers, d, f, h, hd, v = CONFIG.num_layers, CONFIG.hidden_size, CONFIG.intermediate_size, CONFIG.num_heads, 8, 128
    down = lm.params["layers"]["mlp"]["down_proj"]  # [layers, mlp, embed]
    assert down.sharding.spec == P(None, "tensor", "fsdp")
    assert down.addressable_shards[0].data.shape == (layers, f // tensor, d // fsdp)
    embedding = lm.params["embedding"]  # [vocab, embed]
    assert embedding.sharding.spec == P("tensor", "fsdp")
    assert embedding.addressable_shards[0].data.shape == (v // tensor, d // fsdp)
    o_proj = lm.params["layers"]["attention"]["o_proj"]  # [layers, q_heads, head_dim, embed]
    assert o_proj.sharding.spec == P(None, "tensor", None, "fsdp")
    assert o_proj.addressable_shards[0].data.shape == (layers, h // tensor, hd, d // fsdp)
    norm = lm.params["final_norm"]["scale"]
    assert norm.sharding.is_fully_replicated


@pytest.mark.parametrize("mesh_name", list(MESHES))
def test_logits_equal_unsharded(mesh_name, unsharded, make_tiny_lm, record_diff):
    mesh = _mesh(mesh_name)
    lm = make_tiny_lm(seed=4, mesh=mesh)
    assert _leaves(lm.params)["['layers']['mlp']['down_proj']"].sharding.spec == P(None, "tensor", "fsdp")
    tokens = np.random.default_rng(0).integers(0, 128, size=(8, 24)).astype(np.int32)
    diff = np.abs(_logits(lm, tokens) - _logits(unsharded, tokens)).max()
    record_diff(f"logits max|mesh {mesh_name} - unsharded|", diff, 1e-5)
    assert diff <= 1e-5


@pytest.mark.parametrize("mesh_name", ["2x1x4", "1x4x2"])
def test_generate_on_mesh_equals_unsharded(mesh_name, unsharded, make_tiny_lm, record_diff):
    lm = make_tiny_lm(seed=4, mesh=_mesh(mesh_name))
    kwargs = dict(max_new_tokens=16, rng=None, temperature=0.0, stop_tokens=[])
    sharded, reference = sampling.generate(lm, PROMPTS, **kwargs), sampling.generate(unsharded, PROMPTS, **kwargs)
    np.testing.assert_array_equal(sharded.tokens, reference.tokens)
    assert len({tuple(row) for row in reference.tokens.tolist()}) == len(PROMPTS)
    diff = record_diff(
        f"generate logprobs max|{mesh_name} - unsharded|", np.abs(sharded.logprobs - reference.logprobs).max(), 1e-5
    )
    assert diff <= 1e-5


def test_load_onto_mesh(tiny_hf_llama, torch_logits, record_diff):
    path, hf_model = tiny_hf_llama("qwen2_bias")
    mesh = _mesh("1x4x2")
    lm = models.load(path, mesh=mesh)
    assert lm.mesh is mesh
    requested = _leaves(param_shardings(lm.config, mesh))
    for key, leaf in _leaves(lm.params).items():
        assert leaf.sharding.spec == requested[key].spec, key
    tokens = np.random.default_rng(1).integers(0, 128, size=(4, 32)).astype(np.int32)
    diff = record_diff(
        "logits max|loaded on 1x4x2 - hf|", np.abs(_logits(lm, tokens) - torch_logits(hf_model, tokens)).max(), 1e-4
    )
    assert diff <= 1e-4


def test_mesh_num_devices_takes_the_first_n():
    from rlaif_jax import config_defaults, sharding

    mesh_config = config_defaults.mesh()
    assert sharding.mesh_from_config(mesh_config).devices.size == jax.device_count()  # 0 = every device
    mesh_config.num_devices = 2
    mesh = sharding.mesh_from_config(mesh_config)
    assert list(mesh.devices.flat) == jax.devices()[:2] and mesh.shape["fsdp"] == 2
    mesh_config.num_devices = jax.device_count() + 1
    with pytest.raises(ValueError, match=r"config.mesh.num_devices=9; this process has 8 devices"):
        sharding.mesh_from_config(mesh_config)
