"""Prompt sources for the jobs that sample a policy (RL, pair sampling, win rate, RLCD, best-of-n).

A source is a `config` block (`config_defaults.prompts`) whose `task` is one of:
- 'toy', 'sentiment', 'reviews', 'arithmetic': the local tasks (data/toy.py, data/sentiment.py, data/arithmetic.py;
  split by seed or by title);
- 'jsonl': column `field` of `train_file` / `eval_file` (local JSONL);
- 'tldr': Reddit TL;DR posts of CarperAI's `openai_summarize_tldr` ('SUBREDDIT: ... TL;DR:'; hub id or local copy);
- 'hh_rlhf': Anthropic HH dialogues cut after their last `Assistant:` (hub id or local copy; `data_dir` picks a
  subset such as 'harmless-base').
With `dialogue` every prompt is cut after its last `Assistant:` (so an hh-rlhf `chosen` column works as a JSONL
source). A held-out split comes from `eval_file`, else the hub split `eval_split`, else (a single local file) the last
`eval_fraction` of a seeded shuffle of `train_file`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import ml_collections
import numpy as np
from etils import epath

from rlaif_jax.data import arithmetic, hf_datasets
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.sentiment import review_prompts, sentiment_prompts
from rlaif_jax.data.tokenize import encode_prompt
from rlaif_jax.data.toy import toy_rows

LOCAL_TASKS = ("toy", "sentiment", "reviews", "arithmetic")
TASKS = (*LOCAL_TASKS, "jsonl", "tldr", "hh_rlhf")
SPLITS = ("train", "held_out")
HUB_DEFAULTS = {"tldr": hf_datasets.TLDR_SFT, "hh_rlhf": hf_datasets.HH_RLHF}


def source_config(task: str = "toy", **overrides) -> ml_collections.ConfigDict:
    """A prompt-source config block (`config.rl.prompts`, `config.prompts`, ...) for `task`."""
    values = dict(
        task=task,  # 'toy', 'sentiment', 'reviews', 'arithmetic', 'jsonl', 'tldr' or 'hh_rlhf'
        train_file="",  # jsonl: the file; tldr / hh_rlhf: hub id or local file / directory ('' = the hub id)
        eval_file="",  # held-out prompts; '' = the hub split eval_split, or eval_fraction of a single train_file
        split="train",  # tldr / hh_rlhf: hub split (or file-name prefix in a local directory) of the train prompts
        eval_split="test" if task == "hh_rlhf" else "valid",  # tldr / hh_rlhf: split of the held-out prompts
        eval_fraction=0.05,  # share of a single train_file held out when there is no eval_file
        field="prompt",  # jsonl: the prompt column ('chosen' with dialogue=True reads hh-rlhf transcripts)
        data_dir="",  # hh_rlhf: subset, e.g. 'harmless-base' or 'helpful-base' ('' = all)
        dialogue=task == "hh_rlhf",  # cut every prompt after its last 'Assistant:'
    )
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"unknown prompt-source keys {sorted(unknown)}; known: {sorted(values)}")
    values.update(overrides)
    return ml_collections.ConfigDict(values)


def dialogue_prompt(transcript: str) -> str:
    """An HH transcript cut after its last `Assistant:` and stripped, as RLCD's authors build prompts
    (`prompt[: prompt.rindex('Assistant:') + len('Assistant:')].strip()`). Idempotent on such prompts."""
    cut = transcript.rfind("Assistant:")
    if cut < 0:
        raise ValueError(f"no 'Assistant:' turn in the dialogue {transcript[:80]!r}")
    return transcript[: cut + len("Assistant:")].strip()


def check_source(source, name: str = "prompts") -> None:
    """Raises ValueError naming the key (`name`.key, e.g. 'config.rl.prompts.train_file') when a prompt source
    cannot be read, so a job or chain can check it before any stage runs."""
    if source.task not in TASKS:
        raise ValueError(f"{name}.task={source.task!r}; expected one of {TASKS}")
    if source.task == "jsonl" and not source.train_file:
        raise ValueError(f"{name}.train_file is not set (task 'jsonl')")
    for key in ("train_file", "eval_file"):
        path = source[key]
        if path and source.task == "jsonl" and not epath.Path(path).is_file():  # local or a gs:// URI
            raise FileNotFoundError(f"{name}.{key}: no file {path}")


def _local_prompts(task: str, split: str, seed: int) -> list[str]:
    if task == "toy":
        return [row["prompt"] for row in toy_rows(256, seed=seed + (0 if split == "train" else 10_000))]
    if task == "sentiment":
        return sentiment_prompts(split)
    if task == "arithmetic":
        return arithmetic.arithmetic_prompts(split, 512, seed)
    return review_prompts(split)


def _held_out_part(rows: list, split: str, fraction: float, seed: int) -> list:
    """The train or held-out part of one file's rows: a seeded shuffle, the last `fraction` held out."""
    order = np.random.default_rng([seed, 3]).permutation(len(rows))
    num_held_out = int(round(fraction * len(rows)))
    chosen = order[len(rows) - num_held_out :] if split == "held_out" else order[: len(rows) - num_held_out]
    return [rows[i] for i in sorted(chosen)]


def _file_rows(source, split: str, seed: int) -> list[dict]:
    """Rows {'prompt', '_source'} of a 'jsonl', 'tldr' or 'hh_rlhf' source for `split`."""
    if source.task == "jsonl":
        read = lambda path: [  # noqa: E731
            {"prompt": row[source.field], "_source": row["_source"]} for row in read_jsonl(path, (source.field,))
        ]
    elif source.task == "tldr":
        read = lambda path, hub_split: hf_datasets.load_tldr_sft(path, hub_split)  # noqa: E731
    else:
        read = lambda path, hub_split: hf_datasets.load_hh_rlhf(path, hub_split, data_dir=source.data_dir or None)  # noqa: E731
    train_file = source.train_file or HUB_DEFAULTS.get(source.task, "")
    if source.task == "hh_rlhf" and source.data_dir and os.path.isdir(train_file):
        train_file = os.path.join(train_file, source.data_dir)  # a local copy of the hub layout: DIR/harmless-base/
        if not os.path.isdir(train_file):
            raise FileNotFoundError(f"prompts.data_dir: no directory {train_file}")
    if source.task == "jsonl":
        if split == "held_out" and source.eval_file:
            return read(source.eval_file)
        rows = read(train_file)
        return _held_out_part(rows, split, source.eval_fraction, seed) if not source.eval_file else rows
    if split == "held_out" and source.eval_file:
        return read(source.eval_file, source.eval_split)
    if os.path.isfile(train_file):  # one local file holds both splits
        return _held_out_part(read(train_file, "train"), split, source.eval_fraction, seed)
    return read(train_file, source.split if split == "train" else source.eval_split)


def load_prompts(source: ml_collections.ConfigDict | str, split: str, seed: int = 0, num_prompts: int = 0) -> list[str]:
    """Prompt texts of `source` (module docstring; a bare task name means its defaults) for 'train' or 'held_out'.

    With `num_prompts` > 0 the first `num_prompts`, cycling through the split again when it is shorter (the 8
    held-out `reviews` titles give 128 samples at 128); 0 = the split once. Raises ValueError naming the file and
    row of a prompt that cannot be read, and when the split has no prompts.
    """
    if isinstance(source, str):
        source = source_config(source)
    check_source(source)
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    if source.task in LOCAL_TASKS:
        prompts = _local_prompts(source.task, split, seed)
    else:
        prompts = []
        for row in _file_rows(source, split, seed):
            text = row["prompt"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{row['_source']}: prompt column {source.field!r} is empty or not a string")
            try:
                prompts.append(dialogue_prompt(text) if source.dialogue else text)
            except ValueError as error:
                raise ValueError(f"{row['_source']}: column {source.field!r}: {error}") from error
    if not prompts:
        raise ValueError(f"prompts.task={source.task!r} has no {split} prompts")
    if num_prompts <= 0:
        return prompts
    return [prompts[i % len(prompts)] for i in range(num_prompts)]


def encode_prompts(
    tokenizer, texts: Sequence[str], *, use_chat_template: bool, max_prompt_length: int, source: str
) -> list[list[int]]:
    """Token ids of each prompt; raises naming `source` and the prompt index if one exceeds `max_prompt_length`."""
    ids = [encode_prompt(tokenizer, text, use_chat_template=use_chat_template) for text in texts]
    for index, prompt in enumerate(ids):
        if len(prompt) > max_prompt_length:
            raise ValueError(
                f"{source} prompt {index} has {len(prompt)} tokens > max_prompt_length={max_prompt_length}"
            )
    return ids
