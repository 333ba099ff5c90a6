"""Pretraining-style text for PPO-ptx (InstructGPT eq. 2): documents tokenised into fixed-length windows whose
every token is scored by next-token NLL (no prompt, no chat template).

A corpus is a `.txt` file (documents separated by blank lines) or a `.jsonl` file (one document per row in column
`field`). Documents are joined with EOS and cut into windows of `max_length` tokens, BOS first when the tokenizer
adds one; the last partial window is padded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rlaif_jax.data.jsonl import read_jsonl

PTX_PREFIX = "ptx_"
# A small local corpus (16 short plain-English paragraphs, written for this library) for the tiny / smollm2 PPO-ptx
# configs: pretraining-style text unrelated to any task's prompts.
SAMPLE_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pretraining_sample.txt")


def read_corpus(path: str, field: str = "text") -> list[str]:
    """The documents of a `.txt` (blank-line separated) or `.jsonl` (column `field`) file; raises naming the file
    (and row) when it is missing, empty or a row has no text."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretraining corpus {path} does not exist")
    if path.endswith(".jsonl"):
        documents = []
        for row in read_jsonl(path, (field,)):
            if not isinstance(row[field], str) or not row[field].strip():
                raise ValueError(f"{row['_source']}: column {field!r} is empty or not a string")
            documents.append(row[field])
    else:
        with open(path, encoding="utf-8") as f:
            documents = [block.strip() for block in f.read().split("\n\n") if block.strip()]
    if not documents:
        raise ValueError(f"pretraining corpus {path} has no documents")
    return documents


def corpus_windows(tokenizer, documents: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
    """Every window of `max_length` tokens of the EOS-joined documents: tokens int32, attention_mask and loss_mask
    bool, `[num_windows, max_length]` (the loss covers every real token; the first is never a target)."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    stream: list[int] = []
    for document in documents:
        stream.extend(tokenizer(document, add_special_tokens=False)["input_ids"])
        stream.append(eos)
    width = max_length - len(bos)
    if width < 2:
        raise ValueError(f"ptx max_length={max_length} leaves no room for a target token")
    num_windows = -(-len(stream) // width)
    tokens = np.full((num_windows, max_length), pad, np.int32)
    attention_mask = np.zeros(tokens.shape, bool)
    for index in range(num_windows):
        ids = bos + stream[index * width : (index + 1) * width]
        tokens[index, : len(ids)] = ids
        attention_mask[index, : len(ids)] = True
    return {"tokens": tokens, "attention_mask": attention_mask, "loss_mask": attention_mask.copy()}


def ptx_sampler(windows: dict[str, np.ndarray], seed: int):
    """`batch(size, iteration) -> {'ptx_tokens', 'ptx_attention_mask', 'ptx_loss_mask'}`: `size` windows drawn
    without replacement (with, when the corpus has fewer), the same for the same (seed, iteration)."""
    num_windows = len(windows["tokens"])

    def batch(size: int, iteration: int) -> dict[str, np.ndarray]:
        draws = np.random.default_rng([seed, 7, iteration])
        rows = draws.choice(num_windows, size, replace=num_windows < size)
        return {PTX_PREFIX + name: value[rows] for name, value in windows.items()}

    return batch
