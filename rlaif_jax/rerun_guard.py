"""The re-run guard: a job re-run in a workdir that holds an earlier run continues it only if the config is the same
up to keys that merely extend the run; any other change stops the job before it writes anything.

The fingerprint of a run is its `config.json` (every key, since nearly every key changes some output) minus
`EXTENDING_KEYS`: more `train.num_steps`, a later `train.stop_at_step`, logging and checkpoint cadence, the mesh
(a pod slice of another shape resumes the run), and a `prompts` list that keeps the earlier prompts as its prefix.
`--config.overwrite=True` (main.py) moves the old workdir to `WORKDIR.replaced-YYYYmmdd-HHMMSS` and starts afresh.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from typing import Any

from absl import logging

from rlaif_jax.models.config import RUNTIME_DEFAULTS

# Dotted keys (from the job config's root) whose change continues a run instead of starting another one.
EXTENDING_KEYS = frozenset(
    {
        "train.num_steps",  # more steps continue from the latest checkpoint (fewer than it is an error: train/)
        "train.stop_at_step",  # where a run pauses as if preempted
        "train.log_every",
        "checkpoint.every_steps",
        "checkpoint.every_iterations",
        "checkpoint.keep",
        # The device layout: a checkpoint restores onto any mesh (float32 rounding aside, the same run).
        "mesh.data",
        "mesh.fsdp",
        "mesh.tensor",
        "mesh.num_devices",
        "mesh.rules",
    }
)
# How a model runs, not what it computes (float rounding aside, as for the mesh), at any depth of a config (a chain
# stage's `model`, online_rl's `sft.model`, win_rate's `policy_a.model`), with the value that runs as before the
# key existed: a change continues the run, and an old run's config without the key is the same run.
LAYOUT_KEYS = {f"model.{name}": RUNTIME_DEFAULTS[name] for name in ("remat", "attention", "vocab_chunk_size")}
# List-valued keys that may grow at the end (earlier entries' outputs stay valid).
APPENDABLE_KEYS = frozenset({"prompts"})


class ConfigChangedError(ValueError):
    """A re-run's config differs from the workdir's earlier run in a key that changes results."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        if not tree and prefix:
            flat[prefix] = {}
        return flat
    return {prefix: tree}


_MISSING = "<absent>"


_OFF_VALUES = (None, False, 0, 0.0, "", (), [], {})


def _job_prefixes(*trees: Mapping) -> set[str]:
    """Dotted paths ('' = the root) of the sub-configs that are whole job configs (they have a 'job' key), such as
    online_rl's `sft` block: their own extending keys extend them."""
    prefixes: set[str] = set()

    def walk(tree, prefix):
        if not isinstance(tree, Mapping):
            return
        if "job" in tree or not prefix:
            prefixes.add(prefix)
        for key, value in tree.items():
            walk(value, f"{prefix}.{key}" if prefix else str(key))

    for tree in trees:
        walk(tree, "")
    return prefixes


def _layout_key(key: str) -> str | None:
    """The LAYOUT_KEYS entry `key` ends with, or None."""
    return next((name for name in LAYOUT_KEYS if key == name or key.endswith("." + name)), None)


def _is_extending(key: str, prefixes: set[str]) -> bool:
    if key in EXTENDING_KEYS or _layout_key(key):
        return True
    # A nested job's cadence, pause point and mesh extend it too; its num_steps does not: its result is this run's
    # input (online_rl's SFT start), so more SFT steps would change what the resumed run continues from.
    return any(
        key == f"{prefix}.{extending}"
        for prefix in prefixes
        if prefix
        for extending in EXTENDING_KEYS - {"train.num_steps"}
    )


def _compare(old: Mapping, new: Mapping) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """(results-changing changes, extending changes) of `new` against `old`, each (dotted key, old, new) by key."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    prefixes = _job_prefixes(old, new)
    changes, extended = [], []
    for key in sorted(set(flat_old) | set(flat_new)):
        before, after = flat_old.get(key, _MISSING), flat_new.get(key, _MISSING)
        if before == after:
            continue
        layout = _layout_key(key)
        if before is _MISSING and layout and after == LAYOUT_KEYS[layout]:
            continue  # added to the library since, at the value the earlier run ran with
        if _is_extending(key, prefixes):
            extended.append((key, before, after))
        elif before is _MISSING and any(after == off and type(after) is type(off) for off in _OFF_VALUES):
            continue
        elif not (
            key in APPENDABLE_KEYS
            and isinstance(before, list)
            and isinstance(after, list)
            and after[: len(before)] == before
        ):
            changes.append((key, before, after))
    return changes, extended


def changed_keys(old: Mapping, new: Mapping) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every key whose change is not an extension, sorted by key.

    `old` and `new` are config dicts as written to config.json. A key only one of them has counts as changed
    (its value on the other side is '<absent>'), except a key the old run did not have that is now at an off value
    (None, False, 0, '', empty): a setting added to the library since, at its default, changes nothing.
    """
    return _compare(old, new)[0]


def check_rerun(old: Mapping, new: Mapping, config_path: str) -> None:
    """Raises ConfigChangedError listing every results-changing key of `new` against `old` (the config the run at
    `config_path` was started with), with both values. When the re-run may continue, logs the extending keys it
    changed (a decaying LR schedule is rebuilt for a new `train.num_steps`: the steps already taken keep theirs)."""
    changes, extended = _compare(old, new)
    workdir = os.path.dirname(config_path)
    if not changes:
        if extended:
            logging.warning(
                "continuing the run in %s with %s",
                workdir,
                "; ".join(f"{key}: {before!r} then, {after!r} now" for key, before, after in extended),
            )
        return
    lines = "\n".join(f"  {key}: {_short(before)} then, {_short(after)} now" for key, before, after in changes)
    raise ConfigChangedError(
        f"{workdir} holds a run started with another config ({config_path}); nothing was written. "
        f"{len(changes)} changed key(s):\n{lines}\n"
        f"Use a new --workdir, or add --config.overwrite=True to start afresh there (the old run is kept as "
        f"{workdir}.replaced-<date>)."
    )


def check_num_steps(new: Mapping, workdir: str) -> None:
    """Raises ConfigChangedError when `new['train']['num_steps']` is below the newest checkpoint step saved in
    `workdir/checkpoints/` (a shorter re-run would export the longer run's weights as its own)."""
    from rlaif_jax import workdir as run_dir
    from rlaif_jax.checkpoints.orbax_state import CHECKPOINT_DIR

    train = new.get("train")
    num_steps = train.get("num_steps") if isinstance(train, Mapping) else None
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    if not isinstance(num_steps, int) or num_steps <= 0 or not run_dir.path(directory).is_dir():
        return  # 0: derived from epochs by the job (train/loop.fit checks the derived number)
    steps = [int(entry.name) for entry in run_dir.path(directory).iterdir() if entry.name.isdigit()]
    if steps and max(steps) > num_steps:
        raise ConfigChangedError(
            f"{directory} has a checkpoint at step {max(steps)}, past train.num_steps={num_steps}; nothing was "
            f"written: raise num_steps to at least {max(steps)}, or start afresh (--config.overwrite=True or a new "
            f"--workdir)"
        )


def check_workdir(new: Mapping, workdir: str) -> None:
    """The guard of a re-run in `workdir`: with a `config.json` there (the earlier run's), raises
    ConfigChangedError when `new` (the config dict about to be written) changes a results-changing key
    (`check_rerun`), sets `train.num_steps` below the latest checkpoint (`check_num_steps`), or the file is not
    JSON. Without one, returns: a fresh workdir."""
    from rlaif_jax import workdir as run_dir

    config_path = os.path.join(workdir, run_dir.CONFIG_FILE)
    if not run_dir.exists(config_path):
        return
    text = run_dir.read_text(config_path)
    try:
        old = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigChangedError(
            f"{config_path}: not JSON ({error}); cannot tell whether this re-run continues that run: move {workdir} "
            f"away or use --config.overwrite=True"
        ) from error
    check_rerun(old, new, config_path)
    check_num_steps(new, workdir)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def replace_workdir(workdir: str, now: datetime.datetime | None = None) -> str | None:
    """Moves a non-empty `workdir` to `WORKDIR.replaced-YYYYmmdd-HHMMSS` (a `-N` suffix if taken) so a run can
    start afresh there; returns the new name, or None when there was nothing to move.

    With several processes every one calls it; process 0 moves the directory (and alone returns its new name)
    while the others wait, so none writes into the old run. A workdir on an object store is not moved (that would
    copy every object): it raises a ValueError saying so.
    """
    from rlaif_jax.workdir import is_local, one_writer

    if not is_local(workdir):
        raise ValueError(
            f"--config.overwrite=True: {workdir} is on an object store, where moving a run copies every object; "
            f"delete it or use a new --workdir"
        )
    workdir = os.path.abspath(workdir)
    with one_writer(workdir + ".replaced") as writing:
        if not writing or not os.path.isdir(workdir) or not os.listdir(workdir):
            return None
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        target, suffix = f"{workdir}.replaced-{stamp}", 1
        while os.path.exists(target):
            suffix += 1
            target = f"{workdir}.replaced-{stamp}-{suffix}"
        os.rename(workdir, target)
        return target
