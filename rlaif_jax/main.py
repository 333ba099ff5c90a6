"""The one entry point: `python -m rlaif_jax.main --config=configs/NAME.py:ARG --workdir=DIR [--config.key=value]`.

Parses flags, checks every `--config.` override names an existing key, and runs the pipeline `config.job` names.
A re-run in a used workdir continues the earlier run, or stops before writing anything when the config changed in
a key that changes results (`rerun_guard`); `--config.overwrite=True` moves the old workdir to
`WORKDIR.replaced-<date>` first and starts afresh.
Launched on several hosts (a TPU pod, SLURM, Open MPI, or by hand with JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID), every process runs this same command; they join (`distributed.initialize`) before anything else.
Exit codes: 0 done; 75 (`preemption.PREEMPTED_EXIT_CODE`) stopped by SIGTERM / SIGINT at a saved step (rerun the
same command to resume); anything else failed.
"""

from __future__ import annotations

import functools
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from rlaif_jax import config_overrides

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/NAME.py:ARG", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (config.json, metrics, checkpoints)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv, *, overwrite: bool = False) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from rlaif_jax import pipelines, preemption, rerun_guard

    if overwrite:
        moved = rerun_guard.replace_workdir(_WORKDIR.value)
        if moved:
            print(f"--config.overwrite: the earlier run in {_WORKDIR.value} is kept as {moved}", flush=True)
    try:
        pipelines.run(_CONFIG.value, _WORKDIR.value)
    except rerun_guard.ConfigChangedError as changed:
        raise SystemExit(f"error: {changed}") from None
    except preemption.Preempted as stopped:
        logging.warning("%s", stopped)
        sys.exit(preemption.PREEMPTED_EXIT_CODE)


if __name__ == "__main__":
    from rlaif_jax import distributed

    distributed.initialize()  # before anything touches a JAX backend (config files included)
    sys.argv, overwrite = config_overrides.split_overwrite(sys.argv)
    config_overrides.check_argv(sys.argv)
    app.run(functools.partial(main, overwrite=overwrite))
