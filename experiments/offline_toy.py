"""Every preference and offline method of the survey and ReST on the toy letters task, from one SFT start.

    python experiments/offline_toy.py --workdir=/tmp/offline_toy            # ~3 min on 2 CPU cores
    python experiments/offline_toy.py --workdir=/tmp/offline_toy --smoke    # seconds a method, for the test suite
    python experiments/offline_toy.py --workdir=/tmp/offline_toy --methods=dpo,ipo,best_of_n

Each method runs its `configs/NAME.py:tiny` (the recipe and measured numbers are in that file's docstring); all but
ReST start from one shared SFT policy (configs/sft.py:tiny in WORKDIR/sft). ReST fine-tunes its own BC start on its
dataset D, as the paper does (ReST §2: "BC G=0 I=0"). The KL column is KL(π ‖ π_start) in nats per sequence on the
held-out prompts; best-of-n has no new policy, so it shows the analytic bound log n − (n − 1)/n.

Writes WORKDIR/offline_toy.md and offline_toy.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os

from rlaif_jax import config_defaults, pipelines

# run name -> (table label, config file, overrides). The run name is the run directory and the --methods key.
METHODS = {
    "dpo": ("DPO", "dpo", {}),
    "cdpo": ("cDPO (ε = 0.1)", "dpo", {"loss.label_smoothing": 0.1}),
    "hinge": ("DPO hinge", "dpo", {"loss.loss_type": "hinge"}),
    "ipo": ("IPO", "ipo", {}),
    "slic": ("SLiC-HF (sample-rank)", "slic", {}),
    "rrhf": ("RRHF", "rrhf", {}),
    "rso": ("RSO (sigmoid-norm)", "rso", {}),
    "best_of_n": ("best-of-n, largest n (inference)", "best_of_n", {}),
    "expert_iteration": ("expert iteration, last round", "expert_iteration", {}),
    "conditional": ("conditional tokens (<|good|>)", "conditional", {}),
    "rest": ("ReST (G=2, own BC start)", "rest", {}),
}

# Smoke sizes: a handful of optimizer steps and prompts per method, keeping each pipeline's full code path.
SMOKE_OVERRIDES = {
    "preference": {
        "train.num_steps": 2,
        "data.num_prompts": 8,
        "eval.num_prompts": 8,
        "checkpoint.every_steps": 2,
    },
    "best_of_n": {"best_of_n.ns": (1, 2), "best_of_n.eval_prompts": 8},
    "expert_iteration": {
        "expert_iteration.iterations": 1,
        "expert_iteration.prompts_per_iteration": 8,
        "expert_iteration.steps_per_iteration": 2,
        "expert_iteration.eval_prompts": 8,
    },
    "conditional": {"conditional.train_prompts": 8, "conditional.steps": 2, "conditional.eval_prompts": 8},
    "rest": {
        "sft.train.num_steps": 4,
        "data.num_sources": 8,
        "data.num_eval": 8,
        "data.num_original": 8,
        "grow.num_steps": 1,
        "grow.num_samples": 2,
        "improve.num_steps": 1,
        "improve.sgd_steps": 2,
    },
}


def _set(config, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for parent in parents:
        node = node[parent]
    node[leaf] = value


def summarize(job: str, results: dict) -> dict:
    """(start gold, end gold, end KL, optimizer steps or n) of one pipeline's results, whatever its job."""
    if job == "preference":
        return dict(
            start_gold=results["start"]["gold_reward"],
            end_gold=results["end"]["gold_reward"],
            end_kl=results["end"]["kl"],
        )
    if job == "best_of_n":
        first, last = results["rows"][0], results["rows"][-1]
        return dict(start_gold=first["gold_reward"], end_gold=last["gold_reward"], end_kl=last["kl_bound"])
    if job == "expert_iteration":
        last = results["iterations"][-1]
        return dict(start_gold=results["start"]["gold_reward"], end_gold=last["gold_reward"], end_kl=last["kl"])
    if job == "conditional":
        return dict(
            start_gold=results["start"]["gold_reward"],
            end_gold=results["good"]["gold_reward"],
            end_kl=results["good"]["kl"],
        )
    if job == "rest":
        kept = [step for step in results["steps"] if "skipped" not in step]
        last = kept[-1]["test"] if kept else results["start"]["test"]
        return dict(start_gold=results["start"]["test"]["gold_reward"], end_gold=last["gold_reward"], end_kl=last["kl"])
    raise ValueError(f"no summary for job {job!r}")


def shared_sft(workdir: str, smoke: bool) -> str:
    """configs/sft.py:tiny trained once into WORKDIR/sft (reused when its export exists); the export's path."""
    sft_dir = os.path.join(workdir, "sft")
    hf_dir = os.path.join(sft_dir, "hf_model")
    if not os.path.exists(os.path.join(hf_dir, "config.json")):
        config = config_defaults.load_config_file("sft", "tiny")
        config.export_hf = True
        if smoke:
            config.train.num_steps = 20
        pipelines.run(config, sft_dir)
    return hf_dir


def run(workdir: str, smoke: bool, methods: tuple[str, ...] | None = None) -> list[dict]:
    """Runs each method of METHODS (or those named in `methods`) on the toy task; one result row per method."""
    unknown = sorted(set(methods or ()) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
    start_model = shared_sft(workdir, smoke)
    rows = []
    for run_name, (label, config_name, overrides) in METHODS.items():
        if methods is not None and run_name not in methods:
            continue
        config = config_defaults.load_config_file(config_name, "tiny")
        if config.job != "rest":
            config.sft_first = False
            config.model.name = start_model
        for key, value in {**(SMOKE_OVERRIDES[config.job] if smoke else {}), **overrides}.items():
            _set(config, key, value)
        results = pipelines.run(config, os.path.join(workdir, run_name))
        rows.append(dict(method=label, run=run_name, **summarize(config.job, results)))
    return rows


def to_markdown(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| method | gold reward, start | gold reward, after | KL(π ‖ π_start), nats/seq |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['method']} | {row['start_gold']:.3f} | {row['end_gold']:.3f} | {row['end_kl']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--smoke", action="store_true", help="a few steps per method (for tests)")
    parser.add_argument("--methods", default="", help=f"comma-separated run names out of {','.join(METHODS)}")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rows = run(args.workdir, args.smoke, tuple(args.methods.split(",")) if args.methods else None)
    table = to_markdown(rows)
    with open(os.path.join(args.workdir, "offline_toy.md"), "w", encoding="utf-8") as f:
        f.write(table)
    with open(os.path.join(args.workdir, "offline_toy.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    print(table)


if __name__ == "__main__":
    main()
