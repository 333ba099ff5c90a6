"""Experiments as chains of jobs: the stages are data, one runner runs them.

A chain config has `chain.order` (stage names, in order) and `stages.NAME`, each a whole job config (its `job` is a
pipeline name, e.g. 'sft', 'ai_labels', 'online_rl'). Stage NAME runs in WORKDIR/NAME. A string value of a stage
config that starts with `@STAGE/PATH`, or holds it after a ':' ('reward_model:@rm'), names an earlier stage's output
and becomes WORKDIR/STAGE/PATH before the stage runs. Before anything runs, `check_chain` verifies every stage's
job, that each reference names an earlier stage, that PATH is an output that stage's job writes (`OUTPUTS`), and
each job's own `check_config(stage_config)` where its module has one.

A finished stage leaves WORKDIR/NAME/stage_done.json (its effective config, results and wall time): a re-run skips
it, and raises (changing nothing) if the stage's config differs from the one it ran with in a key that changes
results (`rerun_guard`; every stage is checked before anything is written). An interrupted stage has
no marker and is called again; every job resumes from its own checkpoints.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import time
from collections.abc import Callable

import ml_collections

from rlaif_jax import workdir as run_dir
from rlaif_jax.evaluation.report import jsonable

STAGE_DONE_FILE = "stage_done.json"
# Output paths a job writes under its workdir (first path component of a reference).
OUTPUTS = {
    "sft": ("hf_model", "metrics.jsonl", "config.json"),
    "samples": ("samples.jsonl", "pairs.jsonl", "rankings.jsonl", "samples.json"),
    "ai_labels": ("ai_labels.jsonl", "config.json"),
    "reward_model": ("", "hf_model", "metrics.jsonl", "eval.json"),  # '' = the workdir (`reward_model:DIR`)
    "online_rl": ("hf_model", "metrics.jsonl", "eval_start.json", "eval_end.json"),
    "preference": ("hf_model", "metrics.jsonl", "eval_start.json", "eval_end.json"),
    "win_rate": ("win_rate.json", "win_rate.md", "win_rate_ci.png", "generations_a.jsonl", "generations_b.jsonl"),
    "generate": ("generations.jsonl",),
    "rlcd_demos": ("sft_data.jsonl",),
    "rlcd_pairs": ("pairs.jsonl", "pairs_rescored.jsonl", "pairs_stats.json"),
    "rlcd_agreement": ("rm_gold_agreement.json",),
}
_REFERENCE = re.compile(r"(?:^|(?<=:))@([A-Za-z_][A-Za-z0-9_]*)(/[^:]*)?")


def stage_names(config) -> list[str]:
    """`config.chain.order`, checked against `config.stages` (ValueError naming the stage)."""
    order = list(config.chain.order)
    stages = set(config.stages.keys())
    for name in order:
        if name not in stages:
            raise ValueError(f"config.chain.order names stage {name!r}; config.stages has {sorted(stages)}")
    if len(set(order)) != len(order):
        raise ValueError(f"config.chain.order repeats a stage: {order}")
    for name in sorted(stages - set(order)):
        raise ValueError(f"config.stages.{name} is not in config.chain.order {order}")
    return order


def _string_leaves(tree, prefix: str):
    for key, value in tree.items():
        path = f"{prefix}.{key}"
        if isinstance(value, ml_collections.ConfigDict):
            yield from _string_leaves(value, path)
        elif isinstance(value, str):
            yield path, value


def references(stage_config, prefix: str) -> list[tuple[str, str, str]]:
    """(dotted key, referenced stage, path under it) of every `@STAGE/PATH` reference in a stage config."""
    found = []
    for key, value in _string_leaves(stage_config, prefix):
        for match in _REFERENCE.finditer(value):
            found.append((key, match.group(1), (match.group(2) or "").lstrip("/")))
    return found


def check_chain(config) -> None:
    """Raises ValueError naming the stage and key of an unknown job, a reference to a stage that is not earlier,
    or a reference to a file the referenced job does not write; nothing has run yet."""
    from rlaif_jax.pipelines import PIPELINES

    order = stage_names(config)
    jobs = {}
    for index, name in enumerate(order):
        stage = config.stages[name]
        job = stage.get("job")
        if job not in PIPELINES or job == "chain":
            raise ValueError(f"config.stages.{name}.job={job!r}; expected one of {sorted(set(PIPELINES) - {'chain'})}")
        jobs[name] = job
        for key, target, path in references(stage, f"config.stages.{name}"):
            if target not in order[:index]:
                raise ValueError(f"{key} names @{target}, which is not a stage before {name!r} (order: {order})")
            top = path.split("/", 1)[0]
            outputs = OUTPUTS.get(jobs[target])
            if outputs is not None and top not in outputs:
                raise ValueError(
                    f"{key} names @{target}/{path}, but stage {target!r} ({jobs[target]}) writes {list(outputs)}"
                )
        check = getattr(importlib.import_module(PIPELINES[job]), "check_config", None)  # a job's own up-front checks
        if check is not None:
            try:
                check(stage.copy_and_resolve_references())
            except (ValueError, FileNotFoundError) as error:
                raise type(error)(f"config.stages.{name}: {error}") from error


def resolve(stage_config, workdir: str) -> ml_collections.ConfigDict:
    """A copy of `stage_config` with every `@STAGE/PATH` replaced by WORKDIR/STAGE/PATH."""
    resolved = stage_config.copy_and_resolve_references()

    def substitute(node):
        for key, value in node.items():
            if isinstance(value, ml_collections.ConfigDict):
                substitute(value)
            elif isinstance(value, str) and _REFERENCE.search(value):
                node[key] = _REFERENCE.sub(
                    lambda m: os.path.join(workdir, m.group(1), (m.group(2) or "").lstrip("/")).rstrip("/"), value
                )

    with resolved.unlocked():
        substitute(resolved)
    return resolved


def _check_stage_rerun(name: str, effective: dict, workdir: str) -> dict | None:
    """The stage_done.json record of a finished stage (None if it has not finished), for the stage's `effective`
    config dict. Raises `rerun_guard.ConfigChangedError` if the stage's config differs from the one it ran with in
    a results-changing key (a finished stage whose config differs only in extending keys, such as the mesh, stays
    done), or, for an interrupted stage, whatever its job's own guard would raise (`rerun_guard.check_workdir`)."""
    from rlaif_jax import rerun_guard

    stage_dir = os.path.join(workdir, name)
    done_path = os.path.join(stage_dir, STAGE_DONE_FILE)
    if not run_dir.exists(done_path):
        rerun_guard.check_workdir(effective, stage_dir)
        return None
    done = json.loads(run_dir.read_text(done_path))
    rerun_guard.check_rerun(done["config"], effective, done_path)
    return done


def run_chain(config, workdir: str, run_job: Callable | None = None) -> dict:
    """Runs the stages of `config` in order in WORKDIR/NAME (module docstring); returns {stage: results}.

    A progress line per stage start and finish goes to stdout; each job draws its own bars. Ends by writing
    WORKDIR/report.md and its plots (`evaluation.chain_report`).
    """
    from rlaif_jax import pipelines
    from rlaif_jax.evaluation import chain_report

    run_job = run_job or pipelines.run
    check_chain(config)
    order = stage_names(config)
    stages = {name: resolve(config.stages[name], workdir) for name in order}
    effective = {name: json.loads(run_dir.config_to_json(stage)) for name, stage in stages.items()}
    done = {name: _check_stage_rerun(name, effective[name], workdir) for name in order}  # before anything is written
    run_dir.write_config(config, workdir, guard=False)  # each stage's own config is guarded (above, and by its job)
    results, seconds = {}, {}
    for index, name in enumerate(order, start=1):
        stage, stage_dir = stages[name], os.path.join(workdir, name)
        if done[name] is not None:
            print(f"[chain {index}/{len(order)}] {name} ({stage.job}): done earlier, skipped", flush=True)
            results[name], seconds[name] = done[name]["results"], done[name]["seconds"]
            continue
        print(f"[chain {index}/{len(order)}] {name} ({stage.job}): start in {stage_dir}", flush=True)
        start = time.perf_counter()
        stage_results = jsonable(run_job(stage, stage_dir), name)
        seconds[name] = time.perf_counter() - start
        results[name] = stage_results
        run_dir.write_json(
            stage_dir, STAGE_DONE_FILE, {"config": effective[name], "results": stage_results, "seconds": seconds[name]}
        )
        print(f"[chain {index}/{len(order)}] {name} ({stage.job}): finished in {seconds[name]:.0f} s", flush=True)
    report = chain_report.write_chain_report(config, workdir, results, seconds)
    logging.info("chain report: %s", report)
    print(f"[chain] report: {report}", flush=True)
    return results
