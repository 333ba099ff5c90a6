"""sharding.py's checks: a rule that cannot apply warns naming the parameter (an error with `config.mesh.strict`),
a mesh that does not fit the devices and a batch the mesh cannot split are named before any step runs."""

import json
import os

import jax
import pytest

from rlaif_jax import config_defaults, models, sharding
from rlaif_jax.pipelines import sft


def _tensor4_mesh():
    return sharding.make_mesh(fsdp=2, tensor=4)


def test_a_rule_that_cannot_apply_warns_naming_parameter_shape_and_axis(caplog):
    config = models.ModelConfig(vocab_size=128, num_heads=4, num_kv_heads=2)  # 2 kv heads on tensor=4
    with caplog.at_level("WARNING"):
        lm = models.init_random(config, mesh=_tensor4_mesh())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sharding:")]
    qkv = [line for line in lines if "qkv_proj" in line]
    assert qkv and "(2, 32, 2, 4, 8)" in qkv[0] and "kv_heads, size 2" in qkv[0] and "'tensor' (size 4)" in qkv[0]
    # The dimension is replicated instead; everything else keeps its sharding.
    assert lm.params["layers"]["attention"]["qkv_proj"].sharding.spec[2] is None
    assert lm.params["layers"]["mlp"]["down_proj"].sharding.spec == jax.sharding.PartitionSpec(None, "tensor", "fsdp")


def test_strict_makes_it_an_error_listing_every_parameter():
    config = models.ModelConfig(vocab_size=128, num_heads=4, num_kv_heads=2)
    config = config.replace(attention_bias=True)  # the q/k/v bias has a kv_heads axis too
    with pytest.raises(sharding.ShardingError, match=r"config.mesh.strict: 2 parameter\(s\)") as error:
        models.init_random(config, mesh=_tensor4_mesh(), strict=True)
    message = str(error.value)
    assert "qkv_proj" in message and "qkv_bias" in message and "o_proj" not in message  # o_proj's 4 heads divide


def test_the_sft_job_honours_config_mesh_strict(tmp_path):
    config = config_defaults.load_config_file("sft", "tiny")
    config.mesh.fsdp, config.mesh.tensor, config.mesh.strict = 2, 4, True
    config.model.tiny.num_kv_heads = 2
    with pytest.raises(sharding.ShardingError, match="qkv_proj"):
        sft.run(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_a_mesh_that_does_not_fit_the_devices_names_config_mesh():
    mesh_config = config_defaults.mesh()
    mesh_config.data, mesh_config.fsdp = 3, 2
    with pytest.raises(ValueError, match=r"config.mesh \(data=3, fsdp=2, tensor=1\): mesh .* needs 6 devices; have 8"):
        sharding.mesh_from_config(mesh_config)
    mesh_config.fsdp = -1
    with pytest.raises(ValueError, match=r"config.mesh \(data=3, fsdp=-1, tensor=1\): 8 devices do not divide"):
        sharding.mesh_from_config(mesh_config)


def test_a_batch_the_mesh_cannot_split_is_named_before_any_step(tmp_path):
    config = config_defaults.load_config_file("sft", "tiny")
    config.train.batch_size = 12  # fsdp=-1: all 8 devices split the batch
    with pytest.raises(ValueError, match=r"config.train.batch_size=12 is not divisible by the data-parallel size 8"):
        sft.run(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints") and not os.path.exists(tmp_path / "metrics.jsonl")
    assert json.loads((tmp_path / "config.json").read_text())["train"]["batch_size"] == 12
    config.train.batch_size, config.train.accumulation_steps = 16, 4  # micro-batches of 4 on 8 devices
    with pytest.raises(ValueError, match=r"batch_size=16 \(4 per micro-batch of 4\) is not divisible"):
        sft.run(config, str(tmp_path / "accumulated"))
