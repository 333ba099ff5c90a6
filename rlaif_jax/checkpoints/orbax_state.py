"""Save and restore a train-state pytree under `workdir/checkpoints/` with orbax."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import jax
import orbax.checkpoint as ocp

from rlaif_jax import workdir as run_dir

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
    is finished by the next `save`, `wait_until_finished` or `close`. A step still
    being written is not listed; a directory left half-written by a crash
    (`<step>.orbax-checkpoint-tmp*`) is never a step and is deleted when the next
    manager opens the directory. A background save that failed makes the next
    `save` (or `wait_until_finished` / `close`) raise its error, and its step is
    never listed.
    """

    def __init__(self, workdir: str, *, keep: int = 3):
        """Opens (creating) `workdir/checkpoints/`, keeping at most `keep` steps."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.join(run_dir.absolute(workdir), CHECKPOINT_DIR)  # local or a URI orbax writes
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            save_interval_steps=1,
            enable_async_checkpointing=True,
            create=True,
            cleanup_tmp_directories=True,  # saves a killed run left unfinished
        )
        self._manager = _OrbaxManager(self.directory, options=options)
        # Orbax deletes the unfinished saves in a background thread; wait, so that
        # a listing right after opening never shows one (orbax 0.12 has no public call).
        await_cleanup = getattr(self._manager, "_maybe_await_cleanup_tmp_directory", None)
        if await_cleanup is not None:
            await_cleanup()

    def save(self, step: int, state: PyTree, *, force: bool = False) -> bool:
        """Starts saving `state` (a pytree of jax/numpy arrays of any shapes) as `step`.

        Returns False, saving nothing, when `step` is not after the latest saved
        step, unless `force`.
        """
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def all_steps(self) -> list[int]:
        """Returns the finished steps, ascending (not one still being written)."""
        return sorted(
            step
            for step in self._manager.all_steps()
            if ocp.path.step.is_path_finalized(os.path.join(self.directory, str(step)))
        )

    def latest_step(self) -> int | None:
        """Returns the newest finished step, or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def resume_step(self, num_steps: int) -> int:
        """The step a run of `num_steps` (config.train.num_steps) resumes from: the latest saved step, 0 if none.

        Raises ValueError (closing this manager) when the latest step is past `num_steps`: training would not run
        and the job would export the later checkpoint's weights as the shorter run's.
        """
        step = self.latest_step() or 0
        if step > num_steps:
            self.close()
            raise ValueError(
                f"{self.directory} has a checkpoint at step {step}, past config.train.num_steps={num_steps}: "
                f"raise num_steps to at least {step}, or start afresh (--config.overwrite=True or a new workdir)"
            )
        return step

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
        elif step not in self.all_steps():
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
