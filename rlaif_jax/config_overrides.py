"""Checks `--config.a.b=value` overrides against the config file before absl parses them, for a clear error."""

from __future__ import annotations

from collections.abc import Sequence

from ml_collections import config_flags


def unknown_override_keys(config, overrides: Sequence[str]) -> list[str]:
    """Dotted keys among `overrides` (e.g. 'sampling.temprature') that `config` does not have."""
    unknown = []
    for key in overrides:
        node = config
        for part in key.split("."):
            if hasattr(node, "keys") and part in node.keys():
                node = node[part]
            else:
                unknown.append(key)
                break
    return unknown


OVERWRITE_FLAG = "--config.overwrite"


def split_overwrite(argv: Sequence[str]) -> tuple[list[str], bool]:
    """`argv` without `--config.overwrite[=True|False]`, and its value (False when absent).

    `overwrite` is a request to the runner (start afresh in a used workdir, `rerun_guard.replace_workdir`), not a
    setting of the experiment, so it is not a key of any config and is taken out before absl parses the flags.
    """
    kept, overwrite = [], False
    for arg in argv:
        name, has_value, value = arg.partition("=")
        if name != OVERWRITE_FLAG:
            kept.append(arg)
            continue
        if not has_value:
            overwrite = True
        elif value.lower() in ("true", "1", "yes"):
            overwrite = True
        elif value.lower() in ("false", "0", "no"):
            overwrite = False
        else:
            raise SystemExit(f"{OVERWRITE_FLAG}={value!r}: expected True or False")
    return kept, overwrite


def check_argv(argv: Sequence[str]) -> None:
    """Exits with a message naming each unknown `--config.KEY` in `argv` and the keys that do exist there."""
    config_path = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")), None)
    overrides = [arg[len("--config.") :].split("=", 1)[0] for arg in argv if arg.startswith("--config.")]
    if config_path is None or not overrides:
        return
    path, _, arg = config_path.partition(":")
    module = config_flags.config_flags._LoadConfigModule("override_check_config", path)  # noqa: SLF001
    config = module.get_config(arg) if arg else module.get_config()
    unknown = unknown_override_keys(config, overrides)
    if unknown:
        lines = []
        for key in unknown:
            parent_path, _, _ = key.rpartition(".")
            parent = config
            for part in parent_path.split(".") if parent_path else []:
                parent = parent[part] if hasattr(parent, "keys") and part in parent.keys() else None
                if parent is None:
                    break
            known = sorted(parent.keys()) if parent is not None and hasattr(parent, "keys") else []
            where = f"config.{parent_path}" if parent_path else "config"
            lines.append(f"unknown config key {key!r} in --config.{key}; {where} has: {', '.join(known)}")
        raise SystemExit(f"{config_path}: " + "\n".join(lines))
