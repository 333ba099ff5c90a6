"""Loading an HF checkpoint block by block straight into each device's shard (`hf_slices`, `load`)."""

import jax
import numpy as np
import pytest

from rlaif_jax import models, sharding
from rlaif_jax.checkpoints import hf as hf_checkpoint
from rlaif_jax.checkpoints import hf_slices
from rlaif_jax.models import loading


def _host_reference(directory):
    """The old path: every tensor read whole, converted on the host, then placed."""
    config = models.load(directory).config
    return hf_checkpoint.params_from_hf_state_dict(hf_checkpoint.read_safetensors(directory), config)


@pytest.mark.parametrize("variant", ["qwen2_bias", "gemma3", "qwen3_qk_norm"])
@pytest.mark.parametrize("mesh_shape", [(1, 4, 1), (1, 2, 2), (2, 2, 2)])
def test_sharded_load_equals_the_whole_tensor_path(tiny_hf_llama, variant, mesh_shape):
    directory, _ = tiny_hf_llama(variant)
    data, fsdp, tensor = mesh_shape
    mesh = sharding.make_mesh(data, fsdp, tensor, devices=jax.devices()[: data * fsdp * tensor])
    lm = models.load(directory, mesh=mesh)
    expected = _host_reference(directory)
    jax.tree.map(lambda ours, ref: np.testing.assert_array_equal(np.asarray(ours), ref), lm.params, expected)
    shardings = loading.param_shardings(lm.config, mesh)
    jax.tree.map(
        lambda x, s: x.sharding.is_equivalent_to(s, x.ndim) or pytest.fail(str(x.sharding)), lm.params, shardings
    )


def test_unscanned_and_bf16_loads_cast_each_block(tiny_hf_llama):
    directory, _ = tiny_hf_llama("llama_untied")
    lm = models.load(
        directory, scan_layers=False, dtype="bfloat16", mesh=sharding.make_mesh(1, 2, 2, jax.devices()[:4])
    )
    expected = loading.unstack_layers(_host_reference(directory), lm.config.num_layers)
    assert set(lm.params) == set(expected)
    for ours, ref in zip(jax.tree.leaves(lm.params), jax.tree.leaves(expected)):
        assert ours.dtype == np.dtype("bfloat16")
        np.testing.assert_array_equal(np.asarray(ours), ref.astype(ours.dtype))


def test_each_read_is_one_device_block_never_a_whole_tensor(tiny_hf_llama, monkeypatch):
    """Every safetensors read returns at most the block of the leaf one device holds (so a host reads only what
    its devices keep), and the sharded parameters' whole-tensor bytes are never read in one go."""
    directory, _ = tiny_hf_llama("llama_untied")
    reads = []
    real_read = hf_slices.SafetensorsSource.read

    def spy(self, name, index):
        block = real_read(self, name, index)
        reads.append((name, block.nbytes))
        return block

    monkeypatch.setattr(hf_slices.SafetensorsSource, "read", spy)
    mesh = sharding.make_mesh(1, 4, 1, jax.devices()[:4])
    lm = models.load(directory, mesh=mesh)
    tensor_bytes = _tensor_bytes(directory)
    sharded = {name for name in tensor_bytes if name.endswith("proj.weight") or "embed" in name or "lm_head" in name}
    assert {name for name, _ in reads} == set(tensor_bytes)
    for name, nbytes in reads:
        if name in sharded:  # a quarter of the tensor: fsdp=4 splits its hidden axis
            assert nbytes <= tensor_bytes[name] // 4, (name, nbytes, tensor_bytes[name])
    local_bytes = sum(shard.data.nbytes for leaf in jax.tree.leaves(lm.params) for shard in leaf.addressable_shards)
    read_bytes = sum(nbytes for _, nbytes in reads)
    # q, k and v are read per device block too; replicated norms once per device. Nothing beyond the local blocks.
    assert read_bytes <= local_bytes, (read_bytes, local_bytes)


def _tensor_bytes(directory):
    return {name: array.nbytes for name, array in hf_checkpoint.read_safetensors(directory).items()}


def test_read_block_views_split_axes_and_reads_the_outer_range_only():
    full = np.arange(4 * 3 * 2 * 5).reshape(4 * 3 * 2, 5)  # rows = (4, 3, 2)
    seen = []

    class Source(hf_slices.StateDictSource):
        def read(self, name, index):
            seen.append(index)
            return super().read(name, index)

    source = Source({"w": full})
    block = hf_slices.read_block(source, "w", ((4, 3, 2), (5,)), (slice(1, 3), slice(0, 3), slice(1, 2), slice(2, 5)))
    np.testing.assert_array_equal(block, full.reshape(4, 3, 2, 5)[1:3, :, 1:2, 2:5])
    assert seen == [(slice(6, 18), slice(2, 5))]


def test_a_wrong_shape_names_the_tensor_and_both_shapes(tiny_hf_llama):
    directory, hf_model = tiny_hf_llama("llama_tied")
    config = models.load(directory).config
    state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    state["model.layers.1.mlp.down_proj.weight"] = state["model.layers.1.mlp.down_proj.weight"][:, :-1]
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.down_proj\.weight has shape \(32, 63\)"):
        hf_slices.lazy_params(hf_slices.StateDictSource(state), config)
