"""Save and restore a train-state pytree under `workdir/checkpoints/` with orbax."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import jax
import orbax.checkpoint as ocp

if TYPE_CHECKING:
    from typing import Self

CHECKPOINT_DIR = "checkpoints"

PyTree = Any


class _OrbaxManager(ocp.CheckpointManager):
    """orbax's manager, querying preemption only when there is more than one process."""

    def reached_preemption(self, step: int) -> bool:
        # The preemption query has crashed single-process CPU runs where the JAX
        # preemption service is off; a single process has no sync point to reach.
        if jax.process_count() > 1:
            return super().reached_preemption(step)
        return False


class CheckpointManager:
    """Keeps the `keep` latest train states of a run in `workdir/checkpoints/<step>/`.

    Saves are asynchronous: `save` returns once the arrays are copied off the
    caller's buffers, so the caller may donate or replace them at once; the write
    is finished by the next `save`, `wait_until_finished` or `close`. A directory
    left half-written by a crash (`<step>.orbax-checkpoint-tmp*`) is not a step.
    """

    def __init__(self, workdir: str, *, keep: int = 3):
        """Opens (creating) `workdir/checkpoints/`, keeping at most `keep` steps."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            save_interval_steps=1,
            enable_async_checkpointing=True,
            create=True,
        )
        self._manager = _OrbaxManager(self.directory, options=options)

    def save(self, step: int, state: PyTree, *, force: bool = False) -> bool:
        """Starts saving `state` (a pytree of jax/numpy arrays of any shapes) as `step`.

        Returns False, saving nothing, when `step` is not after the latest saved
        step, unless `force`.
        """
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def all_steps(self) -> list[int]:
        """Returns the saved steps, ascending, including one still being written."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """Returns the newest saved step (maybe still being written), or None."""
        return self._manager.latest_step()

    def restore(self, step: int | None, abstract_state: PyTree) -> PyTree:
        """Restores `step` (None: the latest) into the structure of `abstract_state`.

        `abstract_state` has the saved pytree structure with leaves that are
        `jax.ShapeDtypeStruct`s (carrying `.sharding`) or arrays; each leaf is read
        straight into that leaf's shape, dtype and sharding, e.g. a [V, D] embedding
        saved from one device comes back split across a mesh.
        """
        # A step still being written is already listed; read it only once finished.
        self._manager.wait_until_finished()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"{self.directory}: no checkpoint to restore")
        elif step not in self._manager.all_steps():
            raise FileNotFoundError(f"{self.directory}: no checkpoint for step {step}; have {self.all_steps()}")
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

    def wait_until_finished(self) -> None:
        """Blocks until every started save is written and old steps are deleted."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finishes pending saves and releases orbax's resources."""
        self._manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
