"""Loaders for the published preference and SFT datasets, converted to our rows (see data/preferences.py, data/sft.py).

- OpenAI `summarize_from_feedback`, config "comparisons" (Stiennon et al. 2020; RLAIF's summarisation task):
  {info: {post, title, subreddit, ...}, summaries: [{text, ...}, {text, ...}], choice} -> pairwise rows.
- Reddit TL;DR SFT data in CarperAI's `openai_summarize_tldr` schema: {prompt, label} -> SFT rows {prompt, response}.
- Anthropic `hh-rlhf` (Bai et al. 2022; RLAIF's helpful / harmless tasks): {chosen, rejected} full transcripts
  "\\n\\nHuman: ...\\n\\nAssistant: ..." -> pairwise rows (shared history as prompt, final assistant turns as answers).

Each loader takes a hub name (read by `datasets.load_dataset`, which needs a network) or a local JSONL file or
directory (read file by file with `datasets.load_dataset("json", data_files=...)`), so an error names the file and
the row index (0-based) at fault.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable
from typing import Any

SUMMARIZE_FROM_FEEDBACK = "openai/summarize_from_feedback"
TLDR_SFT = "CarperAI/openai_summarize_tldr"
HH_RLHF = "Anthropic/hh-rlhf"

HUMAN_TURN = "\n\nHuman:"
ASSISTANT_TURN = "\n\nAssistant:"


class SkipRow(Exception):
    """A well-formed row with nothing to learn from (e.g. a CNN/DM comparison, identical answers): counted, skipped."""


def tldr_prompt(subreddit: str, title: str, post: str) -> str:
    """The Reddit TL;DR prompt of Stiennon et al. 2020, as in CarperAI's openai_summarize_tldr."""
    return f"SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"


def _response(text: str) -> str:
    """A summary as one leading space + stripped text, so prompt + response reads 'TL;DR: summary' as in the
    TL;DR SFT labels."""
    return " " + text.strip()


def _string(record: dict, key: str, where: str = "") -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field '{where}{key}' is missing, empty or not a string (got {type(value).__name__})")
    return value


def summarize_comparison_to_pair(record: dict[str, Any]) -> dict[str, Any]:
    """One `summarize_from_feedback` comparison -> {'prompt', 'chosen', 'rejected', 'preference', 'margin',
    'confidence'} (the labeler's 1-9 confidence from `extra.confidence`; None where the record has none).

    Raises ValueError for a malformed record, SkipRow for a CNN/DM article comparison (no Reddit post).
    """
    info = record.get("info")
    if not isinstance(info, dict):
        raise ValueError(f"field 'info' is missing or not an object (got {type(info).__name__})")
    if not info.get("post") and info.get("article"):
        raise SkipRow("CNN/DM article, not a Reddit post")
    prompt = tldr_prompt(
        _string(info, "subreddit", "info."), _string(info, "title", "info."), _string(info, "post", "info.")
    )
    summaries = record.get("summaries")
    if not isinstance(summaries, list) or len(summaries) != 2:
        raise ValueError("field 'summaries' must be a list of 2 {'text': ...} objects")
    texts = [
        _string(summary if isinstance(summary, dict) else {}, "text", f"summaries[{i}].")
        for i, summary in enumerate(summaries)
    ]
    choice = record.get("choice")
    if choice not in (0, 1) or isinstance(choice, bool):
        raise ValueError(f"field 'choice' must be 0 or 1, got {choice!r}")
    if texts[0].strip() == texts[1].strip():
        raise SkipRow("identical summaries")
    extra = record.get("extra")
    confidence = extra.get("confidence") if isinstance(extra, dict) else None
    if confidence is not None and (not isinstance(confidence, int) or isinstance(confidence, bool)):
        raise ValueError(f"field 'extra.confidence' must be an integer 1-9 or null, got {confidence!r}")
    return {
        "prompt": prompt,
        "chosen": _response(texts[choice]),
        "rejected": _response(texts[1 - choice]),
        "preference": 1.0,
        "margin": 0.0,
        "confidence": confidence,
    }


def tldr_to_sft_row(record: dict[str, Any]) -> dict[str, Any]:
    """One CarperAI `openai_summarize_tldr` row {prompt, label} -> {'prompt', 'response'}."""
    return {"prompt": _string(record, "prompt").rstrip(), "response": _response(_string(record, "label"))}


def hh_rlhf_to_pair(record: dict[str, Any]) -> dict[str, Any]:
    """One `hh-rlhf` row -> {'prompt', 'chosen', 'rejected', 'preference', 'margin'}.

    The prompt is the transcripts' shared prefix up to and including its last "\\n\\nAssistant:"; chosen and
    rejected are what follows (the final assistant turns). Raises ValueError when there is no shared assistant
    turn, SkipRow when the two transcripts differ before their final turn, a final answer is empty, or both are equal.
    """
    chosen, rejected = _string(record, "chosen"), _string(record, "rejected")
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(ASSISTANT_TURN)
    if cut < 0:
        raise ValueError(f"no shared {ASSISTANT_TURN.strip()!r} turn in 'chosen' and 'rejected'")
    prompt = chosen[: cut + len(ASSISTANT_TURN)]
    chosen_answer, rejected_answer = chosen[len(prompt) :], rejected[len(prompt) :]
    if chosen_answer == rejected_answer:
        raise SkipRow("identical answers")
    if HUMAN_TURN in chosen_answer or HUMAN_TURN in rejected_answer:
        raise SkipRow("the transcripts differ before their final assistant turn")
    if not chosen_answer.strip() or not rejected_answer.strip():
        raise SkipRow("an empty final answer")
    return {"prompt": prompt, "chosen": chosen_answer, "rejected": rejected_answer, "preference": 1.0, "margin": 0.0}


def _local_files(path: str, split: str) -> list[str]:
    """`path` itself, or the JSON / JSONL (optionally .gz) files under directory `path` whose name starts with
    `split` (e.g. 'train.jsonl', 'helpful-base/train.jsonl.gz')."""
    if os.path.isfile(path):
        return [path]
    patterns = [f"**/{split}*.json", f"**/{split}*.jsonl", f"**/{split}*.json.gz", f"**/{split}*.jsonl.gz"]
    files = sorted({f for pattern in patterns for f in glob.glob(os.path.join(path, pattern), recursive=True)})
    if not files:
        raise FileNotFoundError(f"{path}: no {split}*.json[l][.gz] files for split {split!r}")
    return files


def _records(source: str, split: str, *, config_name: str | None, data_dir: str | None, cache_dir: str | None):
    """Yields (where, index, record): every row of a local file / directory, or of the hub dataset `source`."""
    import datasets

    if os.path.exists(source):
        for path in _local_files(source, split):
            try:
                dataset = datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache_dir)
            except Exception as error:  # Arrow / JSON errors: name the file, keep the cause
                raise ValueError(f"{path}: could not read as JSON lines: {error}") from error
            for index, record in enumerate(dataset):
                yield path, index, record
        return
    dataset = datasets.load_dataset(source, config_name, data_dir=data_dir, split=split, cache_dir=cache_dir)
    where = f"{source}[{split}]"
    for index, record in enumerate(dataset):
        yield where, index, record


def _convert(
    source: str,
    split: str,
    convert: Callable[[dict], dict],
    *,
    config_name: str | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
) -> list[dict[str, Any]]:
    rows, skipped = [], {}
    for where, index, record in _records(
        source, split, config_name=config_name, data_dir=data_dir, cache_dir=cache_dir
    ):
        try:
            row = convert(record)
        except SkipRow as reason:
            skipped[str(reason)] = skipped.get(str(reason), 0) + 1
            continue
        except ValueError as error:
            raise ValueError(f"{where} row {index}: {error}") from error
        row["_source"] = f"{where} row {index}"
        rows.append(row)
    if skipped:
        logging.warning("%s [%s]: skipped %s", source, split, ", ".join(f"{n} ({why})" for why, n in skipped.items()))
    if not rows:
        raise ValueError(f"{source} [{split}]: no usable rows")
    return rows


def load_summarize_comparisons(
    source: str = SUMMARIZE_FROM_FEEDBACK, split: str = "train", *, cache_dir: str | None = None
) -> list[dict[str, Any]]:
    """Pairwise rows from `summarize_from_feedback` comparisons (hub name, or a local JSONL file / directory).
    Splits on the hub: 'train', 'validation'. CNN/DM comparisons and identical summaries are skipped (logged)."""
    config_name = None if os.path.exists(source) else "comparisons"
    return _convert(source, split, summarize_comparison_to_pair, config_name=config_name, cache_dir=cache_dir)


def load_tldr_sft(source: str = TLDR_SFT, split: str = "train", *, cache_dir: str | None = None) -> list[dict]:
    """SFT rows {'prompt', 'response'} from CarperAI's TL;DR data (hub splits 'train', 'valid', 'test')."""
    return _convert(source, split, tldr_to_sft_row, cache_dir=cache_dir)


def load_hh_rlhf(
    source: str = HH_RLHF, split: str = "train", *, data_dir: str | None = None, cache_dir: str | None = None
) -> list[dict[str, Any]]:
    """Pairwise rows from Anthropic HH-RLHF (hub splits 'train', 'test'; `data_dir` picks a subset such as
    'helpful-base' or 'harmless-base', as RLAIF App. C does). Rows without a usable final turn are skipped (logged)."""
    return _convert(source, split, hh_rlhf_to_pair, data_dir=data_dir, cache_dir=cache_dir)


LOADERS = {
    "summarize_from_feedback": load_summarize_comparisons,
    "hh_rlhf": load_hh_rlhf,
}  # source name in config.data.source -> pairwise loader


def load_pairs(source: str, path: str, split: str, *, data_dir: str = "") -> list[dict]:
    """Pairwise rows of a `LOADERS` source from `path` (hub id or local copy); `data_dir` picks an hh_rlhf subset
    ('helpful-base', 'harmless-base'): on the hub, or PATH/DATA_DIR of a local copy of the hub's layout."""
    if source not in LOADERS:
        raise ValueError(f"unknown preference dataset {source!r}; expected one of {sorted(LOADERS)}")
    if data_dir and source != "hh_rlhf":
        raise ValueError(f"data_dir={data_dir!r} is only for source 'hh_rlhf', not {source!r}")
    if not data_dir:
        return LOADERS[source](path, split)
    if os.path.isdir(path):
        subset = os.path.join(path, data_dir)
        if not os.path.isdir(subset):
            raise FileNotFoundError(f"data_dir={data_dir!r}: no directory {subset}")
        return load_hh_rlhf(subset, split)
    return load_hh_rlhf(path, split, data_dir=data_dir)
