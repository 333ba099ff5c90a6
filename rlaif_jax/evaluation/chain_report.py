"""The report a chain ends with: WORKDIR/report.md (one headline row per stage, each stage's reproduce command) and
PNG plots beside it (RL reward and KL per step; each win-rate stage's win rate with its CI)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rlaif_jax import workdir as run_dir
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.evaluation import labeler
from rlaif_jax.evaluation.report import interval_plot, markdown_table, save_plot

REPORT_FILE = "report.md"


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def label_agreement(path: str) -> dict:
    """Of an ai_labels.jsonl: how many labels, their agreement with the rows' human (or gold) labels where those are
    not ties (RLAIF §2.3 alignment, swap-averaged), and App. B's same-position rate."""
    rows = read_jsonl(path, ())
    labelled = [row for row in rows if row.get("human_preference") not in (None, 0.5)]
    summary = {"num_labels": len(rows), "num_with_human_label": len(labelled), "agreement": None}
    if labelled:
        p = np.array([r["preference"] if r["human_preference"] > 0.5 else 1 - r["preference"] for r in labelled])
        summary["agreement"] = labeler.alignment(p)
    if rows and "probs_swapped" in rows[0]:
        bias = labeler.position_bias(
            np.array([r["probs_original"] for r in rows]), np.array([r["probs_swapped"] for r in rows])
        )
        summary["same_position_rate"] = bias["same_position_rate"]
    return summary


def headline(job: str, results) -> str:
    """One line of a stage's figures from the results its job returned (ai_labels: from `label_agreement`)."""
    if job == "ai_labels" and isinstance(results, str) and results.endswith(".jsonl"):
        summary = label_agreement(results)
        text = f"{summary['num_labels']} AI labels"
        if summary["agreement"] is not None:
            text += f"; agreement with the pairs' human/gold labels {_fmt(summary['agreement'])}"
            text += f" ({summary['num_with_human_label']} untied)"
        if "same_position_rate" in summary:
            text += f"; same position preferred in both orders {_fmt(summary['same_position_rate'])}"
        return text
    if not isinstance(results, Mapping):
        return str(results)
    if job == "online_rl":
        start, end = results.get("start", {}), results.get("end", {})
        judge = end.get("judge", start.get("judge", "gold"))
        return (
            f"held-out reward ({judge}) {_fmt(start.get('gold_reward'))} -> {_fmt(end.get('gold_reward'))}, "
            f"KL to start {_fmt(end.get('kl'), 2)} nats/seq"
        )
    if job == "win_rate":
        text = (
            f"{results['policy_a']} vs {results['policy_b']} ({results['judge']} judge): win rate "
            f"{_fmt(results['win_rate'])} [{_fmt(results.get('ci_low'))}, {_fmt(results.get('ci_high'))}], "
            f"{results['wins']}/{results['ties']}/{results['losses']} W/T/L"
        )
        for label, rate in results.get("harmless_rate", {}).items():
            text += (
                f"; harmless rate {label} {_fmt(rate['harmless_rate'])} "
                f"[{_fmt(rate.get('ci_low'))}, {_fmt(rate.get('ci_high'))}]"
            )
        return text
    if job == "reward_model":
        return f"held-out accuracy {_fmt(results.get('eval_accuracy'))}, loss {_fmt(results.get('eval_loss'))}"
    if job == "samples":
        text = f"{results['num_pairs']} pairs from {results['num_prompts']} prompts"
        if results.get("gold_reward_mean") is not None:
            text += f", mean gold reward {_fmt(results['gold_reward_mean'])}"
        return text
    if job == "rlcd_pairs":
        pairs = results.get("pairs", {})
        text = f"{pairs.get('num_pairs')} contrast pairs"
        if "num_sides_rejected" in pairs:
            text += f" ({pairs['num_sides_rejected']} sides rejected, {pairs['num_prompts_too_long']} prompts too long)"
        if "rescore" in results:
            text += f"; RLCD-Rescore flipped {_fmt(results['rescore']['flipped'])} of the labels"
        return text
    if job == "rlcd_agreement":
        return (
            f"RM-gold agreement on held-out contrast pairs {_fmt(results['contrast']['agreement'])}, on i.i.d. "
            f"pairs {_fmt(results['iid']['agreement'])}; gold accuracy of the construction labels "
            f"{_fmt(results['train_pairs']['label_accuracy'])}"
        )
    if "loss" in results:
        return f"final train loss {_fmt(results['loss'])}"
    return ", ".join(f"{k} {_fmt(v)}" for k, v in results.items() if isinstance(v, float))


def win_rate_table(win_rates) -> str:
    """One row per comparison 'A vs B', one column per judge: 'win rate [low, high]' (RLAIF Table 1's layout)."""
    cells: dict[str, dict[str, str]] = {}
    for r in win_rates:
        if not isinstance(r, Mapping):
            continue
        row = cells.setdefault(f"{r['policy_a']} vs {r['policy_b']}", {})
        row[f"{r['judge']} judge"] = (
            f"{_fmt(r['win_rate'], 2)} [{_fmt(r.get('ci_low'), 2)}, {_fmt(r.get('ci_high'), 2)}]"
        )
    return markdown_table([{"comparison": name, **row} for name, row in cells.items()])


def _rl_curves(metrics: list[dict]):
    steps = [row["step"] for row in metrics]

    def draw(ax) -> None:
        ax.plot(steps, [row["reward_mean"] for row in metrics], color="tab:blue", label="reward (trained-on)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("mean rollout reward", color="tab:blue")
        kl_axis = ax.twinx()
        kl_axis.plot(steps, [row["kl"] for row in metrics], color="tab:red", label="KL")
        kl_axis.set_ylabel("KL to the start policy, nats/seq", color="tab:red")

    return draw


def write_chain_report(config, workdir: str, results: Mapping, seconds: Mapping) -> str:
    """Writes WORKDIR/report.md and the plots; returns the report's path."""
    rows, plots, commands = [], [], []
    for name in config.chain.order:
        job = config.stages[name].job
        rows.append(
            {
                "stage": name,
                "job": job,
                "headline": headline(job, results.get(name)),
                "seconds": round(seconds[name], 1),
            }
        )
        stage_dir = os.path.join(workdir, name)
        commands.append(
            f"python -m rlaif_jax.main --config=configs/from_json.py:{stage_dir}/config.json --workdir={stage_dir}"
        )
        if job == "online_rl" and run_dir.exists(os.path.join(stage_dir, "metrics.jsonl")):
            metrics = run_dir.read_metrics(stage_dir)
            if metrics:
                plots.append(save_plot(os.path.join(workdir, f"{name}_reward_kl.png"), _rl_curves(metrics)))
        if job == "win_rate" and isinstance(results.get(name), Mapping):
            r = results[name]
            draw = interval_plot(
                [f"{r['policy_a']} vs {r['policy_b']}"],
                [r["win_rate"]],
                [r.get("ci_low")],
                [r.get("ci_high")],
                ylabel=f"win rate ({r['judge']} judge)",
            )
            plots.append(save_plot(os.path.join(workdir, f"{name}_win_rate.png"), draw))
    lines = [f"# {config.chain.get('title', 'chain')}", ""]
    if config.chain.get("description"):
        lines += [config.chain.description, ""]
    lines += [markdown_table(rows)]
    table = win_rate_table([results[n] for n in config.chain.order if config.stages[n].job == "win_rate"])
    if table:
        lines += ["## Win rates (both orders; 95% bootstrap CI)", "", table]
    lines += ["## Plots", ""]
    lines += [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots] or ["(none)"]
    lines += ["", "## Reproduce a stage", "", "```"] + commands + ["```", ""]
    notes = [note for note in config.chain.get("notes", ()) if note]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    path = os.path.join(workdir, REPORT_FILE)
    run_dir.write_text_atomic(path, "\n".join(lines))
    return path
