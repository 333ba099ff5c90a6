"""The CPU-fast toy task with a computed gold reward: write letters that match the one the prompt names.

Prompt `letter: c` -> the ideal response is `cccccc` (RESPONSE_LETTERS letters). In the demonstrations each letter is
replaced by a random other letter with probability `noise`, so a model fine-tuned on them imitates the noise: it
starts well below the best reward, and RL (or best-of-N, DPO, ...) has room to climb at a measurable KL.
"""

from __future__ import annotations

import numpy as np

LETTERS = "abcdefgh"
PROMPT_PREFIX = "letter: "
RESPONSE_LETTERS = 6


def toy_rows(num_rows: int, *, seed: int, noise: float = 0.0) -> list[dict]:
    """`num_rows` {'prompt', 'response'} demonstrations; each response letter is wrong with probability `noise`."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        target = LETTERS[rng.integers(len(LETTERS))]
        others = [letter for letter in LETTERS if letter != target]
        response = [
            others[rng.integers(len(others))] if rng.random() < noise else target for _ in range(RESPONSE_LETTERS)
        ]
        rows.append({"prompt": PROMPT_PREFIX + target, "response": "".join(response)})
    return rows


def toy_reward(prompt: str, response: str) -> float:
    """Gold reward in [0, 1]: letters of the response equal to the prompt's letter, divided by
    max(RESPONSE_LETTERS, len(response)) so that longer answers do not pay."""
    target = prompt[len(PROMPT_PREFIX) :].strip()
    response = response.strip()
    return sum(letter == target for letter in response) / max(RESPONSE_LETTERS, len(response))
