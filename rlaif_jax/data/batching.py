"""Deterministic batch order: the examples of step t are a pure function of (seed, t), so resuming is exact."""

from __future__ import annotations

import jax
import numpy as np


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of epoch `epoch`: `[num_examples]` int64."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(num_examples: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Example indices `[batch_size]` of step `step` (0-based), walking through shuffled epochs back to back;
    a batch that crosses an epoch boundary takes the rest of one epoch and the start of the next."""
    positions = step * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, num_examples)
    permutations = {int(epoch): epoch_permutation(num_examples, seed, int(epoch)) for epoch in np.unique(epochs)}
    return np.array([permutations[int(epoch)][offset] for epoch, offset in zip(epochs, offsets)])


def device_batch(arrays: dict[str, np.ndarray], indices: np.ndarray, shardings: dict) -> dict[str, jax.Array]:
    """Rows `indices` of every array as one global device array per name, placed by `shardings[name]`: each process
    copies only the rows (and columns) its own devices hold, so no host builds the whole batch."""

    def build(array: np.ndarray, sharding) -> jax.Array:
        def shard(index: tuple) -> np.ndarray:
            return array[indices[index[0]]][(slice(None), *index[1:])]

        return jax.make_array_from_callback((len(indices), *array.shape[1:]), sharding, shard)

    return {name: build(array, shardings[name]) for name, array in arrays.items()}
