"""The launch contract of `distributed.launch_arguments`, and `to_host` on one process (the multi-process paths run
in tests/test_multiprocess.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax import distributed, sharding

CONTRACT = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}


def test_a_plain_launch_is_one_process_and_a_detected_cluster_initialises_itself():
    assert distributed.launch_arguments({}) is None
    assert distributed.launch_arguments({"SLURM_NTASKS": "4"}) == {}
    assert distributed.launch_arguments({"TPU_WORKER_HOSTNAMES": "a,b"}) == {}


def test_the_env_contract_gives_coordinator_count_and_id():
    assert distributed.launch_arguments(CONTRACT) == dict(
        coordinator_address="127.0.0.1:1234", num_processes=2, process_id=1
    )
    # A cluster whose own count agrees is fine.
    assert distributed.launch_arguments({**CONTRACT, "OMPI_COMM_WORLD_SIZE": "2"})["num_processes"] == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**CONTRACT, "SLURM_NTASKS": "4"}, r"JAX_NUM_PROCESSES=2 disagrees with the cluster: SLURM_NTASKS gives 4"),
        ({**CONTRACT, "TPU_WORKER_HOSTNAMES": "a,b,c,d"}, r"TPU_WORKER_HOSTNAMES gives 4"),
        ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"}, r"JAX_NUM_PROCESSES, JAX_PROCESS_ID not"),
        ({**CONTRACT, "JAX_PROCESS_ID": "2"}, r"JAX_PROCESS_ID=2 is not in 0 .. JAX_NUM_PROCESSES-1=1"),
        ({**CONTRACT, "JAX_NUM_PROCESSES": "two"}, r"must be integers"),
    ],
)
def test_a_launch_that_contradicts_itself_is_refused_naming_the_keys_and_numbers(env, message):
    with pytest.raises(ValueError, match=message):
        distributed.launch_arguments(env)


def test_initialize_without_a_launch_does_nothing():
    distributed.initialize({})
    assert jax.process_count() == 1 and distributed.is_writer()
    distributed.barrier("nothing to wait for")


def test_to_host_copies_device_and_host_leaves_and_keeps_none():
    mesh = sharding.make_mesh(fsdp=-1)
    sharded = sharding.place_batch(np.arange(16.0).reshape(8, 2), mesh)
    host = distributed.to_host({"a": sharded, "b": jnp.ones(3), "c": None, "d": [1, 2]})
    np.testing.assert_array_equal(host["a"], np.arange(16.0).reshape(8, 2))
    assert isinstance(host["a"], np.ndarray) and host["c"] is None
    np.testing.assert_array_equal(host["d"][1], 2)


def test_take_rows_gathers_a_minibatch_on_device_split_over_the_batch_axes():
    mesh = sharding.make_mesh(fsdp=-1)
    arrays = sharding.place_batch({"x": np.arange(32).reshape(16, 2), "y": np.arange(16.0)}, mesh)
    rows = np.array([3, 0, 15, 7, 8, 1, 2, 9])
    taken = sharding.take_rows(arrays, rows, mesh)
    np.testing.assert_array_equal(np.asarray(taken["x"]), np.arange(32).reshape(16, 2)[rows])
    np.testing.assert_array_equal(np.asarray(taken["y"]), np.arange(16.0)[rows])
    assert taken["x"].sharding.spec[0] == ("data", "fsdp")
