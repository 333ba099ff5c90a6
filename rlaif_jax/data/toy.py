"""The CPU-fast toy task: reverse a short string of letters. Its gold reward is computed, not learned.

Prompt `reverse: cabd` -> ideal response `dbac`. Demonstrations are corrupted with probability `noise` per letter,
so a model fine-tuned on them starts below the best reward and RL has room to climb.
"""

from __future__ import annotations

import numpy as np

LETTERS = "abcdefgh"
PROMPT_PREFIX = "reverse: "


def toy_rows(num_rows: int, *, seed: int, noise: float = 0.0, min_letters: int = 3, max_letters: int = 6) -> list[dict]:
    """`num_rows` {'prompt', 'response'} demonstrations; each response letter is replaced at random w.p. `noise`."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        word = "".join(rng.choice(list(LETTERS), size=rng.integers(min_letters, max_letters + 1)))
        target = [rng.choice(list(LETTERS)) if rng.random() < noise else letter for letter in word[::-1]]
        rows.append({"prompt": PROMPT_PREFIX + word, "response": "".join(target)})
    return rows


def toy_reward(prompt: str, response: str) -> float:
    """Gold reward in [0, 1]: the fraction of the reversed word's positions the response gets right, divided by
    max(len(target), len(response)) so that padding the answer with extra letters does not pay."""
    target = prompt[len(PROMPT_PREFIX) :][::-1]
    response = response.strip()
    if not response:
        return 0.0
    correct = sum(a == b for a, b in zip(target, response))
    return correct / max(len(target), len(response))
