"""The one mesh, the logical-axis rules that map parameter and activation names onto it, and placement helpers.

Modules name axes logically (`embed`, `mlp`, `vocab`, ...); only this file and the config know mesh axes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# (logical name, mesh axis or axes or None). Configs copy this as `config.mesh.rules` and may edit it.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    ("layers", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("qkv", None),
    ("mlp", "tensor"),
    ("norm", None),
)


def normalize_rules(rules: Sequence[Sequence[Any]] | None) -> tuple[tuple[str, Any], ...]:
    """Rules as hashable tuples (configs hold lists); None gives DEFAULT_RULES."""
    if rules is None:
        return DEFAULT_RULES
    normalized = []
    for rule in rules:
        if len(rule) != 2:
            raise ValueError(f"a logical axis rule is (name, mesh_axes); got {rule!r}")
        name, axes = rule
        normalized.append((str(name), tuple(axes) if isinstance(axes, (list, tuple)) else axes))
    return tuple(normalized)


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all); one size may be -1 to take what is left."""
    devices = list(jax.devices() if devices is None else devices)
    shape = [data, fsdp, tensor]
    if shape.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1; got data={data}, fsdp={fsdp}, tensor={tensor}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if len(devices) % known:
            raise ValueError(f"{len(devices)} devices do not divide into mesh {dict(zip(MESH_AXES, shape))}")
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        raise ValueError(f"mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices; have {len(devices)}")
    device_grid = np.asarray(devices).reshape(shape)
    return Mesh(device_grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def mesh_from_config(mesh_config) -> Mesh:
    """Builds the mesh of `config.mesh` (fields data, fsdp, tensor; num_devices: 0 = every device, N = the first
    N, in one process only)."""
    num_devices = mesh_config.get("num_devices", 0)
    devices = None
    if num_devices:
        if jax.process_count() > 1:
            raise ValueError(f"config.mesh.num_devices={num_devices}: only for one process; use 0 on several hosts")
        if not 0 < num_devices <= jax.device_count():
            raise ValueError(f"config.mesh.num_devices={num_devices}; this process has {jax.device_count()} devices")
        devices = jax.devices()[:num_devices]
    try:
        return make_mesh(data=mesh_config.data, fsdp=mesh_config.fsdp, tensor=mesh_config.tensor, devices=devices)
    except ValueError as error:
        raise ValueError(
            f"config.mesh (data={mesh_config.data}, fsdp={mesh_config.fsdp}, tensor={mesh_config.tensor}): {error}"
        ) from error


@contextlib.contextmanager
def activate(mesh: Mesh | None, rules: Sequence[Sequence[Any]] | None):
    """Makes `mesh` and `rules` current, so modules' logical constraints bind while a function is traced."""
    if mesh is None:
        yield
        return
    with jax.set_mesh(mesh), nn.logical_axis_rules(normalize_rules(rules)):
        yield


class ShardingError(ValueError):
    """A parameter's logical axis maps to a mesh axis that does not divide its dimension (`config.mesh.strict`)."""


def _fit_spec(shape, logical_axes, mesh: Mesh, rules) -> tuple[PartitionSpec, list[tuple[int, Any]]]:
    """The PartitionSpec of `logical_axes` on `mesh`, minus mesh axes that do not divide their dimension, and the
    dropped (dimension, mesh axes) pairs."""
    spec = nn.logical_to_mesh_axes(tuple(logical_axes), normalize_rules(rules))
    fitted, dropped = [], []
    for dim, (size, axes) in enumerate(zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)))):
        names = () if axes is None else (axes if isinstance(axes, tuple) else (axes,))
        if size % math.prod(mesh.shape[name] for name in names):
            dropped.append((dim, axes))
            names = ()
        fitted.append(None if not names else (names[0] if len(names) == 1 else names))
    return PartitionSpec(*fitted), dropped


def logical_to_sharding(shape: Sequence[int], logical_axes: Sequence[str | None], mesh: Mesh, rules) -> NamedSharding:
    """NamedSharding for an array of `shape` named `logical_axes`; a mesh axis that does not divide its dimension
    (9 heads on 4 devices) is dropped, so that dimension is replicated instead of unevenly split."""
    return NamedSharding(mesh, _fit_spec(shape, logical_axes, mesh, rules)[0])


ON_UNFIT = ("ignore", "warn", "error")


def tree_shardings(boxed_abstract_tree: Any, mesh: Mesh, rules, on_unfit: str = "ignore") -> Any:
    """Shardings for a tree whose leaves are `nn.LogicallyPartitioned` (from `jax.eval_shape(module.init, ...)`)
    or plain arrays / ShapeDtypeStructs (replicated).

    A mesh axis that does not divide its dimension is dropped (that dimension is replicated); `on_unfit` says what
    else happens then: 'ignore', 'warn' (one warning per parameter, naming it, its shape and the mesh axis) or
    'error' (ShardingError listing every such parameter: `config.mesh.strict`)."""
    if on_unfit not in ON_UNFIT:
        raise ValueError(f"on_unfit={on_unfit!r}; expected one of {ON_UNFIT}")
    unfit = []

    def leaf_sharding(path, leaf):
        if isinstance(leaf, nn.Partitioned):
            if not hasattr(leaf.value, "shape"):  # optax.MaskedNode: a param another multi_transform group owns
                return leaf.value
            if len(leaf.value.shape) != len(leaf.names):  # Adafactor's factored row / column moments: small
                return NamedSharding(mesh, PartitionSpec())
            spec, dropped = _fit_spec(leaf.value.shape, leaf.names, mesh, rules)
            for dim, axes in dropped:
                unfit.append(
                    f"{jax.tree_util.keystr(path)} {tuple(leaf.value.shape)}: dimension {dim} "
                    f"({leaf.names[dim]}, size {leaf.value.shape[dim]}) is not divisible by mesh axis {axes!r} "
                    f"(size {math.prod(mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,)))})"
                )
            return NamedSharding(mesh, spec)
        return NamedSharding(mesh, PartitionSpec())

    shardings = jax.tree_util.tree_map_with_path(
        leaf_sharding, boxed_abstract_tree, is_leaf=lambda x: isinstance(x, nn.Partitioned)
    )
    if unfit and on_unfit == "error":
        raise ShardingError(
            f"config.mesh.strict: {len(unfit)} parameter(s) cannot be sharded as the rules ask on mesh "
            f"{dict(mesh.shape)}:\n  " + "\n  ".join(unfit)
        )
    if on_unfit == "warn":
        for line in unfit:
            logging.warning("sharding: %s; replicated instead (config.mesh.strict=True makes this an error)", line)
    return shardings


def batch_sharding(mesh: Mesh, shape: Sequence[int], rules=None) -> NamedSharding:
    """Sharding of a `[batch, ...]` array: batch over the axes of `activation_batch` (if they divide it)."""
    return logical_to_sharding(shape, ("activation_batch",) + (None,) * (len(shape) - 1), mesh, rules)


def place(host_tree: Any, shardings: Any | None) -> Any:
    """Puts host (numpy) leaves onto devices; with shardings, each device receives only its own shard."""
    if shardings is None:
        return jax.device_put(host_tree)

    def put(host, sharding):
        host = np.asarray(host)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, host_tree, shardings)


def place_batch(host_tree: Any, mesh: Mesh | None, rules=None) -> Any:
    """Puts a tree of host `[batch, ...]` arrays (the same on every process) onto `mesh`, batch-split where the
    data-parallel size divides it (`batch_sharding`); each process copies only the rows its devices hold. Without a
    mesh the tree is returned as it is (jit places it)."""
    if mesh is None:
        return host_tree
    return jax.tree.map(lambda x: place(x, batch_sharding(mesh, np.shape(x), rules)), host_tree)


def take_rows(tree: Any, rows: np.ndarray, mesh: Mesh | None, rules=None) -> Any:
    """Rows `rows` of every `[n, ...]` array of `tree` (device or host), as device arrays split over the
    data-parallel axes (a minibatch gathered on device, from arrays that may be sharded across processes)."""
    out = None if mesh is None else NamedSharding(mesh, PartitionSpec(batch_axes(rules)))
    return _take_rows(out)(tree, np.asarray(rows, np.int32))


@functools.cache
def _take_rows(out_sharding):
    return jax.jit(lambda tree, rows: jax.tree.map(lambda x: x[rows], tree), out_shardings=out_sharding)


def data_parallel_size(mesh: Mesh, rules=None) -> int:
    """How many ways a batch is split: the product of the mesh axes `activation_batch` maps to."""
    axes = batch_axes(rules)
    names = () if axes is None else (axes if isinstance(axes, tuple) else (axes,))
    return math.prod(mesh.shape[name] for name in names)


def check_batch_size(batch_size: int, mesh: Mesh | None, rules, *, key: str, accumulation_steps: int = 1) -> None:
    """Raises ValueError naming `key` when `batch_size` (split into `accumulation_steps` micro-batches) does not
    divide evenly over the data-parallel devices of `mesh` (before any step runs, rather than inside jit)."""
    if mesh is None:
        return
    if batch_size % accumulation_steps:
        raise ValueError(f"{key}={batch_size} is not divisible by accumulation_steps={accumulation_steps}")
    size = data_parallel_size(mesh, rules)
    micro = batch_size // accumulation_steps
    if micro % size:
        per = f" ({micro} per micro-batch of {accumulation_steps})" if accumulation_steps > 1 else ""
        raise ValueError(
            f"{key}={batch_size}{per} is not divisible by the data-parallel size {size} (mesh axes "
            f"{batch_axes(rules)} of {dict(mesh.shape)}): use a multiple of {size}, or another config.mesh"
        )


def batch_axes(rules=None) -> Any:
    """The mesh axes that `activation_batch` maps to (the data-parallel axes)."""
    return dict(normalize_rules(rules)).get("activation_batch")
