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


def toy_graded_rows(num_rows: int, *, seed: int, max_letters: int = 8) -> list[dict]:
    """`num_rows` {'prompt', 'response', 'gold'} rows spread over the gold reward, to teach a judge: a response has
    1 to `max_letters` letters (uniform) and the number of them equal to the prompt's letter is uniform in
    0..length (short responses are the easy cases: on 6-letter responses alone, a 2-layer judge stayed at the
    grades' marginal for 1,000 steps)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        target = LETTERS[rng.integers(len(LETTERS))]
        others = [letter for letter in LETTERS if letter != target]
        length = int(rng.integers(1, max_letters + 1))
        matches = int(rng.integers(0, length + 1))
        letters = [target] * matches + [others[rng.integers(len(others))] for _ in range(length - matches)]
        rng.shuffle(letters)
        prompt, response = PROMPT_PREFIX + target, "".join(letters)
        rows.append({"prompt": prompt, "response": response, "gold": toy_reward(prompt, response)})
    return rows
