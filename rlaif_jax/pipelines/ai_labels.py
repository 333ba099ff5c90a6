"""The `ai_labels` job: label a pairwise preference file with an AI labeler (RLAIF §2.1), resumable.

Input rows (JSONL, or a published dataset through data/hf_datasets.py, or toy pairs): a context under "prompt" or
"context", two responses under "chosen"/"rejected", "better"/"worse" or "response_a"/"response_b", optionally
"task" ('summarize', 'helpful', 'harmless'; default `config.data.task`). Each row is labelled by
`feedback.labeler.label_pairs` (both orders, averaged; CoT optional) and written to WORKDIR/ai_labels.jsonl as

    {"prompt", "chosen": response a, "rejected": response b, "preference": P(a preferred), "probs_original",
     "probs_swapped", "task", "template", "source_index", "label_key"[, "human_preference"][, "rationale_original",
     "rationale_swapped"]}

which `data.preferences.read_pairwise_jsonl` reads, so `configs/reward_model.py` with `--config.loss.type=soft_label
--config.data.train_file=WORKDIR/ai_labels.jsonl` distils the labels into a reward model (§2.2.1). "human_preference"
is the input's human label for chosen/rejected and better/worse input (1.0 unless a "preference" column says
otherwise). Rows are appended batch by batch; "label_key" hashes the labeler settings and the row, so re-running
the command keeps the rows already labelled and labels the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from tqdm import tqdm

from rlaif_jax import sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import hf_datasets, preferences
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.feedback import templates
from rlaif_jax.feedback.labeler import label_pairs
from rlaif_jax.models.loading import with_layer_layout
from rlaif_jax.models.setup import build_mesh, build_model

OUTPUT_FILE = "ai_labels.jsonl"
SOURCES = ("toy", "jsonl", *hf_datasets.LOADERS)
_FIELD_PAIRS = (("chosen", "rejected"), ("better", "worse"), ("response_a", "response_b"))  # human label: first wins


def _text(row: dict, field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{row.get('_source', 'a row')}: column {field!r} is missing, empty or not a string")
    return value


def normalize_row(row: dict, default_task: str) -> dict:
    """{'prompt', 'a', 'b', 'task', 'human_preference' (or None)} of an input row; raises naming its source."""
    source = row.get("_source", "a row")
    prompt_field = "prompt" if "prompt" in row else "context"
    pair = next((fields for fields in _FIELD_PAIRS if fields[0] in row), None)
    if pair is None:
        raise ValueError(
            f"{source}: needs columns 'chosen'/'rejected', 'better'/'worse' or 'response_a'/'response_b' "
            f"(has {sorted(k for k in row if k != '_source')})"
        )
    task = row.get("task", default_task)
    if task not in templates.TASKS:
        raise ValueError(f"{source}: column 'task' is {task!r}; expected one of {templates.TASKS}")
    human = None if pair[0] == "response_a" else float(row.get("preference", 1.0))
    return {
        "prompt": _text(row, prompt_field),
        "a": _text(row, pair[0]),
        "b": _text(row, pair[1]),
        "task": task,
        "human_preference": human,
    }


def load_rows(data_config) -> list[dict]:
    """Normalised rows of `config.data` ('toy': toy letter pairs; 'jsonl'; or a `hf_datasets.LOADERS` source)."""
    if data_config.source not in SOURCES:
        raise ValueError(f"config.data.source={data_config.source!r}; expected one of {SOURCES}")
    if data_config.source == "toy":
        raw = preferences.toy_pairwise_rows(data_config.toy_num_pairs, seed=data_config.seed)
    elif not data_config.input_file:
        raise ValueError(f"config.data.input_file is not set (source {data_config.source!r})")
    elif data_config.source == "jsonl":
        raw = read_jsonl(data_config.input_file)
    else:
        raw = hf_datasets.load_pairs(
            data_config.source, data_config.input_file, data_config.split, data_dir=data_config.get("data_dir", "")
        )
    confidence = tuple(data_config.get("confidence", ()))
    if confidence:
        raw = high_confidence_rows(raw, confidence, f"{data_config.input_file or data_config.source}")
    return [normalize_row(row, data_config.task) for row in raw]


def high_confidence_rows(rows: list[dict], confidence: tuple[int, ...], source: str) -> list[dict]:
    """The rows whose human labeler's 'confidence' (summarize_from_feedback's 1-9 scale) is in `confidence`
    (RLAIF §3.2 fn. 4-5 keep 1, 2, 8, 9 for summarisation alignment). A source without the column, or a filter
    that keeps nothing, raises ValueError naming `config.data.confidence`."""
    if not any("confidence" in row for row in rows):
        raise ValueError(
            f"{source}: config.data.confidence={confidence} needs a 'confidence' column "
            f"(source 'summarize_from_feedback' has one); the rows have {sorted(rows[0]) if rows else []}"
        )
    kept = [row for row in rows if row.get("confidence") in confidence]
    if not kept:
        raise ValueError(f"{source}: no row has a confidence in config.data.confidence={confidence}")
    logging.info("%s: %d of %d rows have a confidence in %s", source, len(kept), len(rows), confidence)
    return kept


def label_key(settings: dict, index: int, row: dict) -> str:
    """A hash of the labeler settings, the row's index and its texts: what a resumed run matches rows by."""
    text = json.dumps([settings, index, row["task"], row["prompt"], row["a"], row["b"]], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def read_done(path: str) -> set[str]:
    """label_keys already in the output (a torn last line from a crash is dropped from the file)."""
    if not run_dir.exists(path):
        return set()
    with run_dir.path(path).open(encoding="utf-8") as f:
        lines = f.readlines()
    complete = [line for line in lines if line.endswith("\n")]
    if len(complete) != len(lines):  # a torn last line: drop it without ever rewriting the rows before it in place
        run_dir.write_text_atomic(path, "".join(complete))
    return {json.loads(line)["label_key"] for line in complete}


def run(config, workdir: str) -> str:
    """Labels `config.data`'s pairs; returns the path of the output JSONL."""
    run_dir.write_config(config, workdir)
    labeler_config = config.labeler
    rows = load_rows(config.data)
    settings = {
        "model": config.model.name,
        "model_seed": config.model.seed if config.model.name == "tiny" else None,
        **{key: labeler_config[key] for key in ("template", "num_shots", "cot", "use_chat_template")},
        "cot_max_new_tokens": labeler_config.cot_max_new_tokens if labeler_config.cot else None,
    }
    keys = [label_key(settings, index, row) for index, row in enumerate(rows)]
    output_path = config.data.output_file or os.path.join(workdir, OUTPUT_FILE)
    done = read_done(output_path)
    unknown = done - set(keys)
    if unknown:
        raise ValueError(
            f"{output_path} holds {len(unknown)} rows labelled from other input or other labeler settings; "
            "use a new output file (or workdir) for new settings"
        )
    pending = [index for index, key in enumerate(keys) if key not in done]
    if not pending:
        logging.info("all %d rows already labelled in %s", len(rows), output_path)
        return output_path

    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    lm = with_layer_layout(
        build_model(config.model, mesh, rules, strict=config.mesh.get("strict", False)), scan_layers=False
    )
    batch_size = labeler_config.batch_size
    with run_dir.open_append(output_path) as out:
        for start in tqdm(range(0, len(pending), batch_size), desc="ai labels", unit="batch"):
            chunk = pending[start : start + batch_size]
            labelled = {}
            for task in templates.TASKS:  # one labeler call per template in the chunk
                indices = [i for i in chunk if rows[i]["task"] == task]
                if not indices:
                    continue
                template = templates.pairwise_template(labeler_config.template or task)
                labels = label_pairs(
                    lm,
                    template,
                    [templates.labeler_context(task, rows[i]["prompt"]) for i in indices],
                    [rows[i]["a"].strip() for i in indices],
                    [rows[i]["b"].strip() for i in indices],
                    num_shots=labeler_config.num_shots,
                    cot=labeler_config.cot,
                    cot_max_new_tokens=labeler_config.cot_max_new_tokens,
                    batch_size=batch_size,
                    use_chat_template=labeler_config.use_chat_template,
                )
                for position, i in enumerate(indices):
                    record = {
                        "prompt": rows[i]["prompt"],
                        "chosen": rows[i]["a"],
                        "rejected": rows[i]["b"],
                        "preference": float(labels.preference[position]),
                        "probs_original": [float(p) for p in labels.probs_original[position]],
                        "probs_swapped": [float(p) for p in labels.probs_swapped[position]],
                        "task": task,
                        "template": template.name,
                        "source_index": i,
                        "label_key": keys[i],
                    }
                    if rows[i]["human_preference"] is not None:
                        record["human_preference"] = rows[i]["human_preference"]
                    if labels.rationales_original is not None:
                        record["rationale_original"] = labels.rationales_original[position]
                        record["rationale_swapped"] = labels.rationales_swapped[position]
                    labelled[i] = record
            for i in chunk:
                out.write(json.dumps(labelled[i], ensure_ascii=False) + "\n")
            out.flush()
    logging.info("labelled %d rows (%d were already done) into %s", len(pending), len(done), output_path)
    return output_path
