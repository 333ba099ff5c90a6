"""Preference examples for reward models: pairwise (chosen vs rejected) and K-way ranked rows, as padded arrays.

Row formats (JSONL, one object a line):
- pairwise: {"prompt", "chosen", "rejected"}, optional "preference" (P(chosen preferred), a soft AI label as in
  RLAIF §2.2.1; default 1.0) and "margin" (Llama 2 §3.2.2; default 0.0).
- ranked: {"prompt", "responses": [best, ..., worst]} with K >= 2 responses, K varying by row (InstructGPT §3.5).

Each response is tokenised as prompt (chat-template user turn, or plain text) + response + EOS and right-padded, so
the reward head is read at the EOS (`losses.reward_model.rewards_at_last_token`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.tokenize import encode_prompt
from rlaif_jax.data.toy import LETTERS, PROMPT_PREFIX, RESPONSE_LETTERS, toy_reward

PAIRWISE_FIELDS = ("prompt", "chosen", "rejected")
RANKED_FIELDS = ("prompt", "responses")


@dataclasses.dataclass
class PreferenceExamples:
    """Padded arrays with how many rows had a response cut (truncated) or were dropped (prompt too long).

    pairwise arrays: chosen_tokens, rejected_tokens (int32 [n, max_length]), chosen_attention_mask,
      rejected_attention_mask, chosen_loss_mask, rejected_loss_mask (bool [n, max_length]; the loss mask is 1 on
      the response tokens and the EOS, as in data/sft.py), preference, margin (float32 [n]); with `with_target`
      also target_tokens, target_attention_mask, target_loss_mask (SLiC's calibration target y_ref).
    ranked arrays: tokens (int32 [n, K_max, max_length]), attention_mask, loss_mask (bool [n, K_max, max_length]),
      valid (bool [n, K_max]; False on the padding slots of rows with fewer than K_max responses), rewards
      (float32 [n, K_max]: the row's 'rewards', else 0, -1, -2, ... down the ranking; 0 on padding slots).
    """

    arrays: dict[str, np.ndarray]
    num_truncated: int
    num_dropped: int

    @property
    def ranked(self) -> bool:
        return "valid" in self.arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def _check_number(row: dict, field: str, default: float, low: float = -math.inf, high: float = math.inf) -> float:
    value = row.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        expected = f"a number in [{low:g}, {high:g}]" if math.isfinite(low) else "a finite number"
        raise ValueError(f"{row['_source']}: column {field!r} must be {expected}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{row['_source']}: column {field!r} must be a finite number, got {value!r}")
    return float(value)


def read_pairwise_jsonl(path: str, *, require_preference: bool = False) -> list[dict[str, Any]]:
    """Pairwise rows of a JSONL file, each with 'preference' and 'margin' filled in (defaults 1.0 and 0.0).

    require_preference: soft labels are trained on, so a row without 'preference' is an error, not 1.0.
    Raises ValueError naming `path:line` and the column at fault (missing or empty prompt/chosen/rejected, a
    preference outside [0, 1] or missing where required, a non-numeric margin).
    """
    rows = read_jsonl(path, PAIRWISE_FIELDS)
    for row in rows:
        if require_preference and "preference" not in row:
            raise ValueError(
                f"{row['_source']}: missing column 'preference' (soft labels need P(chosen preferred) on every row; "
                f"the row has {sorted(set(row) - {'_source'})})"
            )
        row["preference"] = _check_number(row, "preference", 1.0, 0.0, 1.0)
        row["margin"] = _check_number(row, "margin", 0.0)
    return rows


def read_ranked_jsonl(path: str) -> list[dict[str, Any]]:
    """Ranked rows {"prompt", "responses": [best, ..., worst]} of a JSONL file.

    Raises ValueError naming `path:line` and the column at fault ('responses' not a list of >= 2 non-empty strings).
    """
    rows = read_jsonl(path, ("prompt",))
    for row in rows:
        responses = row.get("responses")
        if responses is None:
            raise ValueError(f"{row['_source']}: missing column 'responses' (has {sorted(set(row) - {'_source'})})")
        if not isinstance(responses, list) or len(responses) < 2:
            raise ValueError(f"{row['_source']}: column 'responses' must be a list of >= 2 responses, best first")
        for index, response in enumerate(responses):
            if not isinstance(response, str) or not response.strip():
                raise ValueError(f"{row['_source']}: column 'responses'[{index}] is empty or not a string")
    return rows


def _encode(tokenizer, prompt_ids: list[int], response: str, max_length: int) -> tuple[list[int], bool]:
    """prompt + response + EOS cut to `max_length`, and whether it was cut."""
    ids = prompt_ids + list(tokenizer(response, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    return ids[:max_length], len(ids) > max_length


def _encode_row(
    tokenizer, prompt: str, responses: Sequence[str], max_length: int, use_chat_template: bool
) -> tuple[list[list[int]], bool, int] | None:
    """Each response as prompt + response + EOS cut to `max_length`, whether any was cut, and the prompt's length;
    None when the prompt leaves no room for a response token (the row is dropped)."""
    prompt_ids = encode_prompt(tokenizer, prompt, use_chat_template=use_chat_template)
    if len(prompt_ids) >= max_length:
        return None
    encoded = [_encode(tokenizer, prompt_ids, response, max_length) for response in responses]
    return [ids for ids, _ in encoded], any(cut for _, cut in encoded), len(prompt_ids)


def _log_counts(kind: str, num_rows: int, max_length: int, truncated: int, dropped: int) -> None:
    if truncated or dropped:
        logging.warning(
            "tokenising %d %s rows at max_length=%d: %d rows with a response truncated, %d rows dropped "
            "(prompt too long)",
            num_rows,
            kind,
            max_length,
            truncated,
            dropped,
        )


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def tokenize_pairs(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    max_length: int,
    use_chat_template: bool,
    with_target: bool = False,
) -> PreferenceExamples:
    """Tokenises pairwise rows into chosen_* / rejected_* arrays (see PreferenceExamples); with `with_target`, each
    row's 'target' response too (target_*; a row without one is an error naming it).

    A response that does not fit is cut at `max_length` (the row counts once as truncated); a row whose prompt
    leaves no room for a response token is dropped (counted). Both counts are logged.
    """
    pad = _pad_id(tokenizer)
    sides = ("chosen", "rejected", "target") if with_target else ("chosen", "rejected")
    arrays = {}
    for side in sides:
        arrays[f"{side}_tokens"] = np.full((len(rows), max_length), pad, np.int32)
        arrays[f"{side}_attention_mask"] = np.zeros((len(rows), max_length), bool)
        arrays[f"{side}_loss_mask"] = np.zeros((len(rows), max_length), bool)
    arrays["preference"] = np.zeros(len(rows), np.float32)
    arrays["margin"] = np.zeros(len(rows), np.float32)
    kept, truncated, dropped = 0, 0, 0
    for index, row in enumerate(rows):
        if with_target and not (isinstance(row.get("target"), str) and row["target"].strip()):
            source = row.get("_source", f"row {index}")
            raise ValueError(f"{source}: missing or empty column 'target' (the calibration target y_ref)")
        responses = [row[side] for side in sides]
        encoded = _encode_row(tokenizer, row["prompt"], responses, max_length, use_chat_template)
        if encoded is None:
            dropped += 1
            continue
        encoded_sides, was_cut, prompt_length = encoded
        for side, ids in zip(sides, encoded_sides):
            arrays[f"{side}_tokens"][kept, : len(ids)] = ids
            arrays[f"{side}_attention_mask"][kept, : len(ids)] = True
            arrays[f"{side}_loss_mask"][kept, prompt_length : len(ids)] = True
        arrays["preference"][kept] = row.get("preference", 1.0)
        arrays["margin"][kept] = row.get("margin", 0.0)
        truncated += was_cut
        kept += 1
    _log_counts("pairwise", len(rows), max_length, truncated, dropped)
    if kept == 0:
        raise ValueError(f"every one of {len(rows)} rows was dropped: prompts longer than max_length={max_length}")
    return PreferenceExamples({name: array[:kept] for name, array in arrays.items()}, truncated, dropped)


def tokenize_rankings(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    max_length: int,
    use_chat_template: bool,
    num_responses: int | None = None,
) -> PreferenceExamples:
    """Tokenises ranked rows into tokens / attention_mask / loss_mask [n, K_max, max_length], valid and rewards
    [n, K_max] (a row's optional 'rewards' list, one number per response, else 0, -1, -2, ... down its ranking).

    K_max is `num_responses`, or the largest K among `rows` when None; a row with more responses than
    `num_responses`, or with 'rewards' of another length, is an error naming it. Truncation and dropping as in
    `tokenize_pairs`.
    """
    largest = max(len(row["responses"]) for row in rows)
    num_responses = largest if num_responses is None else num_responses
    for index, row in enumerate(rows):
        source = row.get("_source", f"row {index}")
        if len(row["responses"]) > num_responses:
            raise ValueError(f"{source}: {len(row['responses'])} responses, more than num_responses={num_responses}")
        row_rewards = row.get("rewards")
        if row_rewards is not None and (
            not isinstance(row_rewards, (list, tuple))
            or len(row_rewards) != len(row["responses"])
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in row_rewards)
        ):
            raise ValueError(f"{source}: column 'rewards' must be a list of {len(row['responses'])} numbers")
    pad = _pad_id(tokenizer)
    tokens = np.full((len(rows), num_responses, max_length), pad, np.int32)
    attention_mask = np.zeros((len(rows), num_responses, max_length), bool)
    loss_mask = np.zeros((len(rows), num_responses, max_length), bool)
    valid = np.zeros((len(rows), num_responses), bool)
    rewards = np.zeros((len(rows), num_responses), np.float32)
    kept, truncated, dropped = 0, 0, 0
    for row in rows:
        encoded = _encode_row(tokenizer, row["prompt"], row["responses"], max_length, use_chat_template)
        if encoded is None:
            dropped += 1
            continue
        responses, was_cut, prompt_length = encoded
        row_rewards = row.get("rewards")
        for slot, ids in enumerate(responses):
            tokens[kept, slot, : len(ids)] = ids
            attention_mask[kept, slot, : len(ids)] = True
            loss_mask[kept, slot, prompt_length : len(ids)] = True
            valid[kept, slot] = True
            rewards[kept, slot] = -slot if row_rewards is None else row_rewards[slot]
        truncated += was_cut
        kept += 1
    _log_counts("ranked", len(rows), max_length, truncated, dropped)
    if kept == 0:
        raise ValueError(f"every one of {len(rows)} rows was dropped: prompts longer than max_length={max_length}")
    arrays = {
        "tokens": tokens[:kept],
        "attention_mask": attention_mask[:kept],
        "loss_mask": loss_mask[:kept],
        "valid": valid[:kept],
        "rewards": rewards[:kept],
    }
    return PreferenceExamples(arrays, truncated, dropped)


def _toy_response(rng: np.random.Generator, target: str, noise: float) -> str:
    others = [letter for letter in LETTERS if letter != target]
    return "".join(
        others[rng.integers(len(others))] if rng.random() < noise else target for _ in range(RESPONSE_LETTERS)
    )


def toy_ranked_rows(num_rows: int, *, seed: int, noise: float = 0.5, num_responses: int = 2) -> list[dict]:
    """`num_rows` toy-task prompts (data/toy.py), each with `num_responses` noisy demonstrations of distinct gold
    reward (`toy_reward`), sorted best first: {'prompt', 'responses'}. Draws that tie an earlier one are skipped."""
    if not 0.0 < noise < 1.0 or not 2 <= num_responses <= RESPONSE_LETTERS + 1:
        raise ValueError(f"need 0 < noise < 1 and 2 <= num_responses <= {RESPONSE_LETTERS + 1}")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        target = LETTERS[rng.integers(len(LETTERS))]
        prompt = PROMPT_PREFIX + target
        by_reward: dict[float, str] = {}
        while len(by_reward) < num_responses:
            response = _toy_response(rng, target, noise)
            by_reward.setdefault(toy_reward(prompt, response), response)
        rows.append({"prompt": prompt, "responses": [by_reward[r] for r in sorted(by_reward, reverse=True)]})
    return rows


LABELS = ("hard", "soft")  # config.data.labels of the preference job


def hard_label_rows(rows: Sequence[dict]) -> tuple[list[dict], int]:
    """Each pair oriented by its own label: where P(chosen preferred) = 'preference' < 0.5 the two responses swap
    (preference -> 1 - p); a pair at exactly 0.5 carries no hard label and is dropped. Returns (rows, num_dropped).
    AI-labelled files (pipelines/ai_labels.py) put response a under 'chosen' whatever the labeler preferred, so
    this is what makes DPO / SLiC / RSO learn the labeler's pick."""
    oriented, dropped = [], 0
    for row in rows:
        preference = float(row.get("preference", 1.0))
        if preference == 0.5:
            dropped += 1
        elif preference < 0.5:
            oriented.append({**row, "chosen": row["rejected"], "rejected": row["chosen"], "preference": 1 - preference})
        else:
            oriented.append(row)
    return oriented, dropped


def toy_pairwise_rows(num_rows: int, *, seed: int, noise: float = 0.5) -> list[dict]:
    """`num_rows` toy pairs {'prompt', 'chosen', 'rejected', 'preference': 1.0, 'margin': 0.0}: two noisy
    demonstrations of one prompt, chosen = the higher `toy_reward` (tied draws are skipped)."""
    rows = []
    for row in toy_ranked_rows(num_rows, seed=seed, noise=noise, num_responses=2):
        chosen, rejected = row["responses"]
        rows.append({"prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "preference": 1.0, "margin": 0.0})
    return rows
