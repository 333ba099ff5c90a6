"""Prompts of the controlled-sentiment task (the DPO paper's IMDb setting, §6.1, rebuilt without a dataset hub).

The DPO paper prompts GPT-2 with IMDb review prefixes and rewards positive sentiment. With an instruction-tuned
model we ask for a short review of a named film instead; train and held-out prompts use disjoint titles.
"""

from __future__ import annotations

import numpy as np

TEMPLATES = (
    "Write a short review of the movie '{title}'.",
    "In two sentences, tell me what you thought of the film '{title}'.",
    "Give a brief opinion of the movie '{title}'.",
    "Describe your reaction to watching '{title}'.",
)
TRAIN_TITLES = (
    "The Silent Harbor",
    "Midnight Orchard",
    "Paper Lanterns",
    "The Last Cartographer",
    "Iron Meadow",
    "A Winter in Lisbon",
    "Glass Mountains",
    "The Clockmaker's Son",
    "Northern Lights Motel",
    "Salt and Thunder",
    "The Quiet Engine",
    "Echoes of Avalon",
    "Copper Sky",
    "The Long Goodbye Tour",
    "River of Kites",
    "Blue Lantern Diner",
)
HELD_OUT_TITLES = (
    "The Hollow Crown Affair",
    "Starlight Ferry",
    "Velvet Static",
    "The Ninth Orchard",
    "Dust and Daisies",
    "Harbor of Small Hours",
    "The Brass Telescope",
    "Moonlit Avenue",
)


def sentiment_prompts(split: str) -> list[str]:
    """All template x title prompts of `split` ('train': 64 prompts, 'held_out': 32)."""
    titles = {"train": TRAIN_TITLES, "held_out": HELD_OUT_TITLES}.get(split)
    if titles is None:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'held_out'")
    return [template.format(title=title) for title in titles for template in TEMPLATES]


# The CPU-fast variant for tiny byte-level models: `review: TITLE` -> `ADJ plot, ADJ cast.` with each adjective drawn
# uniformly from positive, negative and neutral words, so an SFT model starts near VADER 0 and a method that learns to
# prefer the positive words climbs towards ~0.85 at a measurable KL (the DPO paper's Figure 2 trade-off, in seconds).
REVIEW_PREFIX = "review: "
REVIEW_ASPECTS = ("plot", "cast")
REVIEW_WORDS = (
    ("great", "superb", "lovely", "brilliant"),  # VADER positive
    ("awful", "dull", "bad", "weak"),  # VADER negative
    ("long", "quiet", "plain", "slow"),  # VADER 0
)


def review_prompts(split: str) -> list[str]:
    """`review: TITLE` prompts of the tiny sentiment task ('train': 16 titles, 'held_out': 8 others)."""
    titles = {"train": TRAIN_TITLES, "held_out": HELD_OUT_TITLES}.get(split)
    if titles is None:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'held_out'")
    return [REVIEW_PREFIX + title.lower() for title in titles]


def review_rows(num_rows: int, *, seed: int) -> list[dict]:
    """`num_rows` {'prompt', 'response'} demonstrations of the tiny sentiment task on train titles."""
    rng = np.random.default_rng(seed)
    prompts = review_prompts("train")
    words = [word for group in REVIEW_WORDS for word in group]
    rows = []
    for _ in range(num_rows):
        picked = [words[rng.integers(len(words))] for _ in REVIEW_ASPECTS]
        response = ", ".join(f"{word} {aspect}" for word, aspect in zip(picked, REVIEW_ASPECTS)) + "."
        rows.append({"prompt": prompts[rng.integers(len(prompts))], "response": response})
    return rows
