"""SFT examples: (prompt, response) rows tokenised with the chat template and padded into fixed-length arrays."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlaif_jax.data.tokenize import encode_prompt


@dataclasses.dataclass
class TokenizedExamples:
    """Right-padded arrays `[num_examples, max_length]`: tokens (int32), attention_mask and loss_mask (bool; the
    response and its EOS), with how many rows were truncated (response cut) or dropped (prompt too long)."""

    arrays: dict[str, np.ndarray]
    num_truncated: int
    num_dropped: int

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def tokenize_prompt_response(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    max_length: int,
    use_chat_template: bool,
    prompt_field: str = "prompt",
    response_field: str = "response",
) -> TokenizedExamples:
    """Tokenises `rows` as prompt (chat-template user turn) + response + EOS.

    A response that does not fit is cut at `max_length` (counted); a row whose prompt leaves no room for one
    response token is dropped (counted). Both counts are logged.
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    tokens = np.full((len(rows), max_length), pad, np.int32)
    attention_mask = np.zeros((len(rows), max_length), bool)
    loss_mask = np.zeros((len(rows), max_length), bool)
    kept, truncated, dropped = 0, 0, 0
    first_dropped = first_truncated = ""  # "row I (N tokens)": where to look when the counts are not expected
    for index, row in enumerate(rows):
        prompt_ids = encode_prompt(tokenizer, row[prompt_field], use_chat_template=use_chat_template)
        response_ids = list(tokenizer(row[response_field], add_special_tokens=False)["input_ids"]) + [eos]
        if len(prompt_ids) >= max_length:
            dropped += 1
            first_dropped = first_dropped or f"row {index} (prompt {len(prompt_ids)} tokens)"
            continue
        ids = prompt_ids + response_ids
        if len(ids) > max_length:
            truncated += 1
            first_truncated = first_truncated or f"row {index} ({len(ids)} tokens)"
            ids = ids[:max_length]
        tokens[kept, : len(ids)] = ids
        attention_mask[kept, : len(ids)] = True
        loss_mask[kept, len(prompt_ids) : len(ids)] = True
        kept += 1
    if truncated or dropped:
        logging.warning(
            "tokenising %d rows at max_length=%d: %d responses truncated (first: %s), %d rows dropped, prompt too "
            "long (first: %s)",
            len(rows),
            max_length,
            truncated,
            first_truncated or "none",
            dropped,
            first_dropped or "none",
        )
    if kept == 0:
        raise ValueError(
            f"every one of {len(rows)} rows was dropped: prompts longer than max_length={max_length} "
            f"(first: {first_dropped})"
        )
    arrays = {"tokens": tokens[:kept], "attention_mask": attention_mask[:kept], "loss_mask": loss_mask[:kept]}
    return TokenizedExamples(arrays, truncated, dropped)


def tokenize_source_target(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    max_source_length: int,
    max_target_length: int,
    use_chat_template: bool = False,
    prompt_field: str = "prompt",
    response_field: str = "response",
) -> TokenizedExamples:
    """Tokenises `rows` for an encoder-decoder: the prompt as the encoder input (left-padded to
    `max_source_length`, as rollouts lay prompts out) and the response + EOS as the decoder's targets (right-padded
    to `max_target_length`, cut when longer: counted). A row whose prompt is longer than `max_source_length` is
    dropped (counted). Arrays: encoder_tokens, encoder_attention_mask `[n, S]`; target_tokens, target_mask `[n, T]`.
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    n = len(rows)
    encoder_tokens = np.full((n, max_source_length), pad, np.int32)
    encoder_mask = np.zeros((n, max_source_length), bool)
    target_tokens = np.full((n, max_target_length), pad, np.int32)
    target_mask = np.zeros((n, max_target_length), bool)
    kept, truncated, dropped = 0, 0, 0
    for row in rows:
        source = encode_prompt(tokenizer, row[prompt_field], use_chat_template=use_chat_template)
        if len(source) > max_source_length:
            dropped += 1
            continue
        target = list(tokenizer(row[response_field], add_special_tokens=False)["input_ids"]) + [eos]
        if len(target) > max_target_length:
            truncated += 1
            target = target[:max_target_length]
        encoder_tokens[kept, max_source_length - len(source) :] = source
        encoder_mask[kept, max_source_length - len(source) :] = True
        target_tokens[kept, : len(target)] = target
        target_mask[kept, : len(target)] = True
        kept += 1
    if truncated or dropped:
        logging.warning(
            "tokenising %d rows (source <= %d, target <= %d tokens): %d targets truncated, %d rows dropped",
            n,
            max_source_length,
            max_target_length,
            truncated,
            dropped,
        )
    if kept == 0:
        raise ValueError(f"every one of {n} rows was dropped: sources longer than {max_source_length} tokens")
    arrays = {
        "encoder_tokens": encoder_tokens[:kept],
        "encoder_attention_mask": encoder_mask[:kept],
        "target_tokens": target_tokens[:kept],
        "target_mask": target_mask[:kept],
    }
    return TokenizedExamples(arrays, truncated, dropped)
