"""Several processes, one program: start-up (`initialize`), who writes the run directory (`is_writer`), the one way
device results reach the host (`to_host`), and the barrier around run-directory writes (`barrier`).

Every process runs the same job over one global mesh. Each builds only the rows of a batch its own devices hold
(`data.batching.device_batch`); results stay on device, and what the host needs (texts to decode, rewards to log,
weights to export) comes back through `to_host`, which gathers across processes when an array is not fully
addressable. Process 0 alone writes files; every process joins orbax's saves and restores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

# The launch-by-hand contract (JAX's own names): all three, or none.
ENV_CONTRACT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# Process counts that clusters JAX detects itself publish: SLURM, Open MPI, Cloud TPU pods (one process per worker).
CLUSTER_PROCESS_COUNTS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


def _cluster_process_count(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """(env key, process count) of the cluster this process was launched on, or None."""
    for key in CLUSTER_PROCESS_COUNTS:
        value = environ.get(key, "")
        if value:
            count = len(value.split(",")) if key == "TPU_WORKER_HOSTNAMES" else int(value)
            return key, count
    return None


def launch_arguments(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The arguments of `jax.distributed.initialize` for this launch: None for a single process (no cluster and no
    env contract), {} for a cluster JAX detects itself, or the env contract's coordinator / count / id.

    Raises ValueError naming the keys when the contract is half set, a value is not a number, the process id is out
    of range, or `JAX_NUM_PROCESSES` disagrees with the cluster's own count."""
    given = [key for key in ENV_CONTRACT if environ.get(key, "")]
    cluster = _cluster_process_count(environ)
    if not given:
        return None if cluster is None else {}
    if len(given) != len(ENV_CONTRACT):
        missing = [key for key in ENV_CONTRACT if key not in given]
        raise ValueError(f"multi-process launch: {', '.join(given)} set but {', '.join(missing)} not (set all three)")
    try:
        num_processes, process_id = int(environ["JAX_NUM_PROCESSES"]), int(environ["JAX_PROCESS_ID"])
    except ValueError as error:
        raise ValueError(f"JAX_NUM_PROCESSES / JAX_PROCESS_ID must be integers: {error}") from None
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(f"JAX_PROCESS_ID={process_id} is not in 0 .. JAX_NUM_PROCESSES-1={num_processes - 1}")
    if cluster is not None and cluster[1] != num_processes:
        raise ValueError(
            f"JAX_NUM_PROCESSES={num_processes} disagrees with the cluster: {cluster[0]} gives {cluster[1]} "
            "processes (unset JAX_NUM_PROCESSES to use the cluster's count)"
        )
    return dict(
        coordinator_address=environ["JAX_COORDINATOR_ADDRESS"], num_processes=num_processes, process_id=process_id
    )


def initialize(environ: Mapping[str, str] = os.environ) -> None:
    """Joins this process to the others of its launch (`launch_arguments`); does nothing for a single process or when
    already joined. Must run before any JAX computation (the first `jax.devices()` fixes the process's view).

    CPU processes exchange collectives through gloo (XLA:CPU's default has none across processes)."""
    arguments = launch_arguments(environ)
    if arguments is None or jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**arguments)
    except RuntimeError as error:  # a single-task SLURM allocation: nothing to join
        if "already" not in str(error).lower():
            raise
    expected = arguments.get("num_processes")
    if expected is not None and jax.process_count() != expected:
        raise ValueError(f"JAX_NUM_PROCESSES={expected}, but the cluster started {jax.process_count()} processes")


def is_writer() -> bool:
    """True in the process that writes the run directory (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier `name` (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
    """`tree` as numpy on this host, whole: an array sharded across processes is gathered from all of them (every
    process must call this together); fully addressable or replicated arrays and host values are copied as they
    are. None leaves stay None."""

    def leaf(x):
        if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(leaf, tree)
