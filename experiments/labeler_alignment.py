"""AI-labeler alignment with human preferences and position bias (RLAIF §2.3, Table 2, App. B / Table 4).

    python experiments/labeler_alignment.py --labeler=smollm2-135m-instruct \
        --pairs=tests/data/fixtures/labeler_pairs.jsonl                   # ~1 min on 2 CPU cores
    python experiments/labeler_alignment.py --labeler=smollm2-135m-instruct \
        --pairs=tests/data/fixtures/labeler_pairs.jsonl --cot --cot_max_new_tokens=64

Each row of --pairs is {"task": summarize|helpful|harmless, "context", "better", "worse"} (better = the human
choice; for harmless, the less harmful response). The labeler scores every pair in both orders (better as response
1, then as response 2). Reported per task and overall:
  alignment_no_swap: one inference per pair, better shown first on even rows and second on odd rows;
  alignment_swap: the two orders averaged (§2.1.1 position debiasing);
  alignment_better_first / _better_second: every pair in one order (their gap shows the position bias);
  position_bias: App. B's share of pairs where the same POSITION wins in both orders; first_share_of_same: of those,
  the share where it is position 1.
Prints a Markdown table, then (last line) one JSON object with the overall figures and a per-task breakdown.

Measured with SmolLM2-135M-Instruct on the 12-pair fixture (see the engineer's report; numbers in its tests): a
135M labeler sits near chance with a strong position bias, unlike PaLM 2 L's 78% / 18% (Tables 3-4).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.evaluation.labeler import labeler_alignment, position_bias
from rlaif_jax.evaluation.report import jsonable, markdown_table
from rlaif_jax.feedback import templates
from rlaif_jax.feedback.labeler import label_pairs

FIELDS = ("task", "context", "better", "worse")


def read_pairs(path: str) -> list[dict]:
    """Rows of the pairs file; raises naming `path:line` for a missing column or an unknown task."""
    rows = read_jsonl(path, FIELDS)
    for row in rows:
        if row["task"] not in templates.TASKS:
            raise ValueError(f"{row['_source']}: task {row['task']!r}; expected one of {templates.TASKS}")
    return rows


def evaluate(
    lm,
    rows: list[dict],
    *,
    template: str = "",
    num_shots: int = 0,
    cot: bool = False,
    cot_max_new_tokens: int = 64,
    batch_size: int = 8,
    use_chat_template: bool = False,
) -> dict:
    """Labels every row in both orders; returns {'overall': figures, 'by_task': {task: figures}, 'templates'}."""
    shown_better_first = np.arange(len(rows)) % 2 == 0
    probs_first = np.zeros((len(rows), 2))
    probs_second = np.zeros((len(rows), 2))
    labels_worse = np.zeros(len(rows), bool)
    used = {}
    for task in templates.TASKS:
        indices = [i for i, row in enumerate(rows) if row["task"] == task]
        if not indices:
            continue
        chosen = templates.pairwise_template(template or task)
        used[task] = chosen.name
        labels = label_pairs(
            lm,
            chosen,
            [templates.labeler_context(task, rows[i]["context"]) for i in indices],
            [rows[i]["better"].strip() for i in indices],
            [rows[i]["worse"].strip() for i in indices],
            num_shots=num_shots,
            cot=cot,
            cot_max_new_tokens=cot_max_new_tokens,
            batch_size=batch_size,
            use_chat_template=use_chat_template,
        )
        probs_first[indices] = labels.probs_original
        probs_second[indices] = labels.probs_swapped
        labels_worse[indices] = chosen.labels_worse

    def figures(indices: np.ndarray) -> dict:
        flip = labels_worse[indices][:, None]
        # Columns as (better named, worse named) for templates that ask for the worse response, so one call covers
        # a mix of tasks.
        first = np.where(flip, probs_first[indices][:, ::-1], probs_first[indices])
        second = np.where(flip, probs_second[indices][:, ::-1], probs_second[indices])
        result = labeler_alignment(first, second, labels_worse=False, shown_better_first=shown_better_first[indices])
        # Position bias is about the positions the model named, before the harmless flip.
        bias = position_bias(probs_first[indices], probs_second[indices])
        result["position_bias"] = bias.pop("same_position_rate")
        return {"n": int(len(indices)), **result, **bias}

    by_task = {task: figures(np.array([i for i, row in enumerate(rows) if row["task"] == task])) for task in used}
    return {"overall": figures(np.arange(len(rows))), "by_task": by_task, "templates": used}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labeler", required=True, help="model path, alias or hub id (anything models.load takes)")
    parser.add_argument("--pairs", required=True, help="JSONL rows {task, context, better, worse}")
    parser.add_argument("--template", default="", help="one template for all rows; default: each task's own")
    parser.add_argument("--num_shots", type=int, default=0, help="few-shot exemplars")
    parser.add_argument("--cot", action="store_true", help="two-step chain of thought")
    parser.add_argument("--cot_max_new_tokens", type=int, default=64, help="rationale length cap (paper: 512)")
    parser.add_argument("--chat_template", action="store_true", help="wrap the prompt in the chat template")
    parser.add_argument("--batch_size", type=int, default=8, help="sequences per forward pass")
    args = parser.parse_args(argv)

    from rlaif_jax import models

    rows = read_pairs(args.pairs)
    lm = models.load(args.labeler, scan_layers=False)
    results = evaluate(
        lm,
        rows,
        template=args.template,
        num_shots=args.num_shots,
        cot=args.cot,
        cot_max_new_tokens=args.cot_max_new_tokens,
        batch_size=args.batch_size,
        use_chat_template=args.chat_template,
    )
    columns = (
        "n",
        "alignment_no_swap",
        "alignment_swap",
        "alignment_better_first",
        "alignment_better_second",
        "position_bias",
        "first_share_of_same",
    )
    table = [
        {"tasks": name, "template": results["templates"].get(name, "per task"), **{c: figures[c] for c in columns}}
        for name, figures in [*results["by_task"].items(), ("all", results["overall"])]
    ]
    print(f"labeler {args.labeler} on {args.pairs} (cot={args.cot}, shots={args.num_shots})")
    print(markdown_table(table))
    summary = {
        **results["overall"],
        "labeler": args.labeler,
        "pairs": args.pairs,
        "cot": args.cot,
        "num_shots": args.num_shots,
        "chat_template": args.chat_template,
        "templates": results["templates"],
        "by_task": results["by_task"],
    }
    print(json.dumps(jsonable(summary), sort_keys=True))
    sys.stdout.flush()
    return summary


if __name__ == "__main__":
    main()
