"""How well an AI labeler agrees with human labels, and how much it prefers a position (RLAIF §2.3, App. B).

Alignment (§2.3): z_acc = (1/D) sum_i 1[argmax_j P^AI_ij = human label_i], the soft AI label binarised by its argmax;
an exact tie (P = 0.5) counts as half right. Position bias (App. B, Table 4): the share of pairs for which the labeler
prefers the same POSITION in the original and the swapped order (so its verdict follows the position, not the
response), and, among those, how often that position is the first one.
"""

from __future__ import annotations

import numpy as np


def alignment(p_human_choice: np.ndarray) -> float:
    """Share of pairs whose soft AI label puts more than half its mass on the human-preferred response.

    p_human_choice: float [n], the AI's P(human-preferred response is better). Ties (exactly 0.5) count 0.5.
    """
    p = np.asarray(p_human_choice, np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"p_human_choice must be a non-empty [n] array; got shape {p.shape}")
    return float(np.mean(np.where(p > 0.5, 1.0, np.where(p == 0.5, 0.5, 0.0))))


def preferred_position(probs: np.ndarray) -> np.ndarray:
    """The position the labeler picks from its `[n, 2]` P("1"), P("2"): int [n], 1 or 2 (0 on an exact tie)."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[1] != 2:
        raise ValueError(f"probs must be [n, 2] (P('1'), P('2')); got shape {probs.shape}")
    return np.where(probs[:, 0] > probs[:, 1], 1, np.where(probs[:, 1] > probs[:, 0], 2, 0))


def position_bias(probs_original: np.ndarray, probs_swapped: np.ndarray) -> dict:
    """App. B's "% same position preferred" from the two orders' raw `[n, 2]` probabilities of "1" and "2".

    Returns {'same_position_rate': share of pairs with the same position picked in both orders,
             'same_first_rate' / 'same_second_rate': share of ALL pairs where that position is 1 / 2,
             'first_share_of_same': among the same-position pairs, the share where it is position 1 (NaN if none),
             'num_pairs', 'num_same_position'}.
    """
    original, swapped = preferred_position(probs_original), preferred_position(probs_swapped)
    if original.shape != swapped.shape:
        raise ValueError(f"probs_original has {original.shape[0]} rows but probs_swapped has {swapped.shape[0]}")
    same = (original == swapped) & (original > 0)
    same_first, same_second = same & (original == 1), same & (original == 2)
    num_same = int(same.sum())
    return {
        "same_position_rate": float(same.mean()),
        "same_first_rate": float(same_first.mean()),
        "same_second_rate": float(same_second.mean()),
        "first_share_of_same": float(same_first.sum() / num_same) if num_same else float("nan"),
        "num_pairs": int(same.size),
        "num_same_position": num_same,
    }


def labeler_alignment(
    probs_better_first: np.ndarray,
    probs_better_second: np.ndarray,
    *,
    labels_worse: bool,
    shown_better_first: np.ndarray,
) -> dict:
    """Alignment with the human label with and without position debiasing, and position bias.

    Args:
      probs_better_first: float [n, 2], the labeler's P("1"), P("2") with the human-preferred response as 1.
      probs_better_second: float [n, 2], the same with it as response 2.
      labels_worse: the template asks for the worse response (harmless), so "1" names response 1 as worse.
      shown_better_first: bool [n], the order of each pair in the single-inference ("no swap") figure.
    Returns:
      {'alignment_no_swap': one inference per pair in the order `shown_better_first`,
       'alignment_swap': both orders averaged (§2.1.1), 'alignment_better_first' / 'alignment_better_second': every
       pair in one order, 'position_bias': App. B's same-position rate, plus `position_bias`'s other fields}.
    """
    first = np.asarray(probs_better_first, np.float64)
    second = np.asarray(probs_better_second, np.float64)
    shown_better_first = np.asarray(shown_better_first, bool)
    if first.shape != second.shape or first.shape != (shown_better_first.size, 2):
        raise ValueError(
            f"expected probs [n, 2] and shown_better_first [n]; got {first.shape}, {second.shape}, "
            f"{shown_better_first.shape}"
        )
    # P(the human-preferred response wins) in each order.
    p_first = first[:, 1] if labels_worse else first[:, 0]
    p_second = second[:, 0] if labels_worse else second[:, 1]
    bias = position_bias(first, second)
    return {
        "alignment_no_swap": alignment(np.where(shown_better_first, p_first, p_second)),
        "alignment_swap": alignment((p_first + p_second) / 2.0),
        "alignment_better_first": alignment(p_first),
        "alignment_better_second": alignment(p_second),
        "position_bias": bias["same_position_rate"],
        **{key: value for key, value in bias.items() if key != "same_position_rate"},
    }
