"""Prompts of the controlled-sentiment task (the DPO paper's IMDb setting, §6.1, rebuilt without a dataset hub).

The DPO paper prompts GPT-2 with IMDb review prefixes and rewards positive sentiment. With an instruction-tuned
model we ask for a short review of a named film instead; train and held-out prompts use disjoint titles.
"""

from __future__ import annotations

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
