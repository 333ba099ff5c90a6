import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlaif_jax.checkpoints import orbax_state


def _state(step, n=2):
    key = jax.random.key(step)
    w = jax.random.normal(key, (4 * n, 3), jnp.float32)
    return {
        "params": {"w": w, "b": jnp.full((3,), step, jnp.bfloat16)},
        "opt_state": (jnp.zeros_like(w) + step, {"count": jnp.int32(step)}),
        "step": jnp.asarray(step, jnp.int32),
    }


def _abstract(state):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def _assert_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


@pytest.fixture
def saved(tmp_path):
    """Steps 1..5 saved with keep=2; yields (workdir, states by step)."""
    states = {step: _state(step) for step in range(1, 6)}
    with orbax_state.CheckpointManager(str(tmp_path), keep=2) as manager:
        for step, state in states.items():
            assert manager.save(step, state)
    return str(tmp_path), states


def test_keeps_last_two(saved):
    workdir, _ = saved
    with orbax_state.CheckpointManager(workdir, keep=2) as manager:
        assert manager.all_steps() == [4, 5]
        assert manager.latest_step() == 5
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "5"]


def test_restore_bit_identical(saved):
    workdir, states = saved
    with orbax_state.CheckpointManager(workdir, keep=2) as manager:
        _assert_equal(manager.restore(4, _abstract(states[4])), states[4])
        _assert_equal(manager.restore(None, states[5]), states[5])
        with pytest.raises(FileNotFoundError, match=r"step 2.*\[4, 5\]"):
            manager.restore(2, _abstract(states[4]))


def test_mutating_after_async_save(tmp_path):
    state = _state(1)
    expected = jax.tree.map(np.array, state)
    with orbax_state.CheckpointManager(str(tmp_path)) as manager:
        assert manager.save(1, state)
        # Donate every buffer and overwrite the caller's tree before the write finishes.
        state = jax.jit(lambda s: jax.tree.map(lambda x: x * 0 - 7, s), donate_argnums=0)(state)
        state["params"]["w"] = jnp.ones_like(state["params"]["w"])
        manager.wait_until_finished()
        _assert_equal(manager.restore(1, _abstract(state)), expected)


def test_numpy_leaf_mutated_in_place_after_save(tmp_path):
    state = {"w": np.arange(1000, dtype=np.float32)}
    with orbax_state.CheckpointManager(str(tmp_path)) as manager:
        manager.save(1, state)
        state["w"][:] = -1
        restored = manager.restore(1, {"w": np.zeros(1000, np.float32)})
    np.testing.assert_array_equal(restored["w"], np.arange(1000, dtype=np.float32))


def test_leftover_tmp_dir_not_listed(saved):
    workdir, states = saved
    # orbax 0.12.8 writes `<step>.orbax-checkpoint-tmp[-<time>]`, renamed when final.
    os.makedirs(os.path.join(workdir, "checkpoints", "6.orbax-checkpoint-tmp-123", "default"))
    with orbax_state.CheckpointManager(workdir, keep=2) as manager:
        assert manager.all_steps() == [4, 5]
        assert manager.latest_step() == 5
        assert manager.save(6, _state(6))
        manager.wait_until_finished()
        assert manager.all_steps() == [5, 6]
        _assert_equal(manager.restore(6, _abstract(states[5])), _state(6))


def test_save_skips_steps_not_after_latest(saved):
    workdir, states = saved
    with orbax_state.CheckpointManager(workdir, keep=2) as manager:
        assert not manager.save(5, states[5])
        assert not manager.save(3, states[3])
        assert manager.latest_step() == 5


def test_restore_onto_mesh_sharding(tmp_path):
    devices = np.array(jax.devices())
    state = _state(3, n=len(devices))
    mesh = Mesh(devices, ("data",))
    shardings = {
        "params": {
            "w": NamedSharding(mesh, PartitionSpec("data", None)),
            "b": NamedSharding(mesh, PartitionSpec()),
        },
        "opt_state": (
            NamedSharding(mesh, PartitionSpec("data")),
            {"count": NamedSharding(mesh, PartitionSpec())},
        ),
        "step": NamedSharding(mesh, PartitionSpec()),
    }
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        state,
        shardings,
    )
    with orbax_state.CheckpointManager(str(tmp_path)) as manager:
        manager.save(3, state)
        restored = manager.restore(3, abstract)
    _assert_equal(restored, state)
    for leaf, sharding in zip(jax.tree.leaves(restored), jax.tree.leaves(shardings), strict=True):
        assert leaf.sharding == sharding


def test_no_preemption_query_in_single_process(tmp_path, monkeypatch):
    def fail(step):
        raise AssertionError("reached_preemption_sync_point called in a single-process run")

    monkeypatch.setattr(multihost_utils, "reached_preemption_sync_point", fail)
    assert jax.process_count() == 1
    with orbax_state.CheckpointManager(str(tmp_path)) as manager:
        assert manager.save(1, _state(1))
        manager.wait_until_finished()
        assert manager.latest_step() == 1


def test_unfinished_save_dirs_are_deleted_when_a_manager_opens(tmp_path, monkeypatch):
    with orbax_state.CheckpointManager(str(tmp_path)) as manager:
        manager.save(1, {"w": jnp.ones(3)})
    # Orbax cleans up in a background thread; under load it finished after the listing (a CI failure).
    import asyncio

    from orbax.checkpoint._src.path import temporary_paths

    cleanup = temporary_paths.cleanup_temporary_paths

    async def slow_cleanup(*args, **kwargs):
        await asyncio.sleep(0.5)
        return await cleanup(*args, **kwargs)

    monkeypatch.setattr(temporary_paths, "cleanup_temporary_paths", slow_cleanup)
    directory = tmp_path / orbax_state.CHECKPOINT_DIR
    (directory / "2.orbax-checkpoint-tmp-1733300000").mkdir()  # a save killed mid-write
    (directory / "2.orbax-checkpoint-tmp-1733300000" / "partial").write_text("x")
    with orbax_state.CheckpointManager(str(tmp_path)) as manager:
        assert manager.all_steps() == [1]
        assert sorted(os.listdir(directory)) == ["1"]


def _patch_finalize(monkeypatch, replacement):
    from orbax.checkpoint._src.path import atomicity

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", replacement)


def test_failed_background_save_raises_at_the_next_save_and_is_never_a_step(tmp_path, monkeypatch):
    manager = orbax_state.CheckpointManager(str(tmp_path))
    manager.save(1, {"w": jnp.ones(3)})
    manager.wait_until_finished()

    import threading

    failed = threading.Event()

    async def disk_full(self, *args, **kwargs):
        failed.set()
        raise OSError("disk full (injected)")

    _patch_finalize(monkeypatch, disk_full)
    manager.save(2, {"w": jnp.full(3, 2.0)})  # returns: the write fails in the background
    assert failed.wait(timeout=60)
    monkeypatch.undo()
    with pytest.raises(OSError, match="disk full"):
        manager.save(3, {"w": jnp.full(3, 3.0)})
    assert manager.all_steps() == [1]
    assert manager.latest_step() == 1
    manager.save(4, {"w": jnp.full(4, 4.0)})  # the manager is usable again
    manager.close()
    with orbax_state.CheckpointManager(str(tmp_path)) as reopened:
        assert reopened.all_steps() == [1, 4]


def test_latest_step_never_names_a_step_still_being_written(tmp_path, monkeypatch):
    import threading

    from orbax.checkpoint._src.path import atomicity

    original = atomicity.AtomicRenameTemporaryPath.finalize
    release = threading.Event()

    async def slow_finalize(self, *args, **kwargs):
        release.wait(timeout=60)
        return await original(self, *args, **kwargs)

    manager = orbax_state.CheckpointManager(str(tmp_path))
    manager.save(1, {"w": jnp.ones(3)})
    manager.wait_until_finished()
    _patch_finalize(monkeypatch, slow_finalize)
    manager.save(2, {"w": jnp.full(3, 2.0)})
    assert manager.latest_step() == 1  # step 2 is still being written
    assert manager.all_steps() == [1]
    release.set()
    manager.wait_until_finished()
    assert manager.latest_step() == 2
    manager.close()
