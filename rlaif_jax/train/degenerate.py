"""Warnings for updates that cannot teach anything: an all-masked batch, a non-finite step, a rollout whose rewards
are all missing, groups whose rewards are all equal. Each kind is logged once per run, naming the first step it
happened at; later occurrences only show in the logged metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import logging

from rlaif_jax.losses import grpo


class DegenerateBatchWarnings:
    """Logs the first occurrence of each kind of degenerate batch (`warn`) and remembers its step (`first`)."""

    def __init__(self):
        """No kind seen yet."""
        self.first: dict[str, int] = {}

    def warn(self, kind: str, step: int, message: str) -> bool:
        """Logs `step S: message` if `kind` was not seen before; returns whether it logged."""
        if kind in self.first:
            return False
        self.first[kind] = step
        logging.warning("step %d: %s", step, message)
        return True

    def check_steps(self, steps: Sequence[int], finite: Sequence[float], counts: Sequence[float]) -> None:
        """Per optimizer step (the train step's 'finite' and 'loss_count' metrics): warns of the first non-finite
        step and the first step whose batch had nothing to score (every row or token masked)."""
        for step, is_finite, count in zip(steps, finite, counts):
            if not is_finite:
                self.warn("nonfinite", step, "non-finite loss or gradient: the update was skipped")
            if count == 0:
                self.warn("empty", step, "the batch has nothing to score (every row or token masked): update skipped")

    def check_rewards(self, step: int, rewards: np.ndarray, group_size: int | None) -> int:
        """Warns when every reward of a rollout (`[n]`) is missing (NaN / inf) and, for group methods
        (`group_size` samples per prompt), when a group's rewards are all equal (advantage 0: no signal).
        Returns the number of such groups (0 without groups)."""
        rewards = np.asarray(rewards, np.float64)
        missing = ~np.isfinite(rewards)
        if missing.all():
            self.warn("rewards_missing", step, f"all {rewards.size} rewards of the rollout are missing (NaN or inf)")
        if not group_size or group_size < 2:
            return 0
        equal_groups = np.asarray(grpo.zero_variance_groups(rewards, group_size))
        equal = int(equal_groups.sum())
        if equal:
            self.warn(
                "zero_variance_groups",
                step,
                f"{equal} of {len(equal_groups)} groups have all {group_size} rewards equal: their advantages are 0",
            )
        return equal
