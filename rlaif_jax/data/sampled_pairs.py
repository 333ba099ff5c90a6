"""Preference data from policy samples: K scored responses per prompt -> pairs (DPO, SLiC, RSO) or groups (RRHF).

A samples file (WORKDIR/samples.jsonl) holds one prompt a line: {"prompt", "responses": [K strings], "rewards":
[K numbers]}. Pairings of one prompt's K responses, ties (equal rewards) always dropped:
- 'best_worst': the highest against the lowest reward, one pair (DPO §6.1 samples 4 and could use all 6).
- 'all_pairs': every pair of distinct rewards, up to K(K-1)/2 (DPO §6.1: 4 completions -> 6 pairs).
- 'tournament': single elimination in sample order, m - 1 matches, winner = higher reward (SLiC-HF sample-rank,
  Zhao et al. 2023 §2; RSO's tournament rank, Liu et al. 2023 §3.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlaif_jax.data.jsonl import read_jsonl, write_jsonl

PAIRINGS = ("best_worst", "all_pairs", "tournament")


def best_worst_pairs(rewards: Sequence[float]) -> list[tuple[int, int]]:
    """[(argmax, argmin)] of `rewards [K]` (first index on ties), or [] when all K rewards are equal."""
    rewards = np.asarray(rewards, np.float64)
    best, worst = int(np.argmax(rewards)), int(np.argmin(rewards))
    return [] if rewards[best] == rewards[worst] else [(best, worst)]


def all_pairs(rewards: Sequence[float]) -> list[tuple[int, int]]:
    """(chosen, rejected) for every i < j of `rewards [K]` with r_i != r_j, chosen = the higher reward."""
    pairs = []
    for i in range(len(rewards)):
        for j in range(i + 1, len(rewards)):
            if rewards[i] != rewards[j]:
                pairs.append((i, j) if rewards[i] > rewards[j] else (j, i))
    return pairs


def tournament_pairs(rewards: Sequence[float]) -> list[tuple[int, int]]:
    """Single-elimination tournament over `rewards [K]` in index order: each round pairs neighbours (an odd one
    out advances unplayed), the higher reward wins (the earlier index on a tie). Returns the K - 1 matches as
    (winner, loser), tied matches left out."""
    pairs = []
    alive = list(range(len(rewards)))
    while len(alive) > 1:
        winners = []
        for first, second in zip(alive[0::2], alive[1::2]):
            winner, loser = (first, second) if rewards[first] >= rewards[second] else (second, first)
            winners.append(winner)
            if rewards[winner] != rewards[loser]:
                pairs.append((winner, loser))
        if len(alive) % 2:
            winners.append(alive[-1])
        alive = winners
    return pairs


def pair_indices(rewards: Sequence[float], pairing: str) -> list[tuple[int, int]]:
    """The (chosen, rejected) index pairs of one prompt's `rewards [K]` under `pairing` (see the module doc)."""
    functions = {"best_worst": best_worst_pairs, "all_pairs": all_pairs, "tournament": tournament_pairs}
    if pairing not in functions:
        raise ValueError(f"pairing={pairing!r}; expected one of {PAIRINGS}")
    return functions[pairing](rewards)


def pairwise_rows(samples: Sequence[dict[str, Any]], pairs: Sequence[Sequence[tuple[int, int]]]) -> list[dict]:
    """Pairwise rows {'prompt', 'chosen', 'rejected', 'best_response', 'preference': 1.0, 'margin': 0.0,
    'chosen_reward', 'rejected_reward'} from `pairs[i]`, the (chosen, rejected) indices into
    `samples[i]['responses']`. 'best_response' is the prompt's best-rewarded response (SLiC-HF's best-decode
    calibration target; the first one on ties)."""
    if len(pairs) != len(samples):
        raise ValueError(f"{len(pairs)} lists of pairs for {len(samples)} prompts")
    rows = []
    for sample, sample_pairs in zip(samples, pairs):
        responses, rewards = sample["responses"], sample["rewards"]
        best_response = responses[int(np.argmax(rewards))]
        for chosen, rejected in sample_pairs:
            rows.append(
                {
                    "prompt": sample["prompt"],
                    "chosen": responses[chosen],
                    "rejected": responses[rejected],
                    "best_response": best_response,
                    "preference": 1.0,
                    "margin": 0.0,
                    "chosen_reward": float(rewards[chosen]),
                    "rejected_reward": float(rewards[rejected]),
                }
            )
    return rows


def ranked_rows(samples: Sequence[dict[str, Any]]) -> list[dict]:
    """Ranked rows {'prompt', 'responses': best first, 'rewards'} (RRHF's groups): each prompt's K responses sorted
    by reward, descending (a stable sort: ties keep sample order)."""
    rows = []
    for sample in samples:
        order = np.argsort(-np.asarray(sample["rewards"], np.float64), kind="stable")
        rows.append(
            {
                "prompt": sample["prompt"],
                "responses": [sample["responses"][i] for i in order],
                "rewards": [float(sample["rewards"][i]) for i in order],
            }
        )
    return rows


def write_samples(path: str, prompts: Sequence[str], responses: Sequence[str], rewards: np.ndarray) -> list[dict]:
    """Writes prompt-major samples (`responses [P * K]`, `rewards [P * K]`, K = len(responses) / len(prompts)) to
    `path` as one {"prompt", "responses", "rewards"} line per prompt; returns those rows."""
    if len(responses) % len(prompts) or len(rewards) != len(responses):
        raise ValueError(f"{len(responses)} responses and {len(rewards)} rewards for {len(prompts)} prompts")
    per_prompt = len(responses) // len(prompts)
    rows = [
        {
            "prompt": prompt,
            "responses": list(responses[i * per_prompt : (i + 1) * per_prompt]),
            "rewards": [float(r) for r in rewards[i * per_prompt : (i + 1) * per_prompt]],
        }
        for i, prompt in enumerate(prompts)
    ]
    write_jsonl(rows, path)
    return rows


def read_samples(path: str, *, num_prompts: int, samples_per_prompt: int) -> list[dict]:
    """Rows of a samples file, checked against the run that reuses it: `num_prompts` lines, each with
    `samples_per_prompt` string responses and as many finite rewards. Errors name `path:line` (or `path`)."""
    rows = read_jsonl(path, ("prompt",))
    if len(rows) != num_prompts:
        raise ValueError(f"{path}: {len(rows)} prompts, but this run samples {num_prompts}; delete it to resample")
    for row in rows:
        responses, rewards = row.get("responses"), row.get("rewards")
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise ValueError(f"{row['_source']}: column 'responses' must be a list of strings")
        if len(responses) != samples_per_prompt:
            raise ValueError(
                f"{row['_source']}: {len(responses)} responses, but this run samples {samples_per_prompt} per prompt"
            )
        if (
            not isinstance(rewards, list)
            or len(rewards) != len(responses)
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) for r in rewards)
        ):
            raise ValueError(f"{row['_source']}: column 'rewards' must be {len(responses)} finite numbers")
    return rows
