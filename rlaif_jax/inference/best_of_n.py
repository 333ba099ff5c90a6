"""Best-of-N: sample N responses per prompt, keep the one a reward function scores highest.

As an inference-time policy it is the reranking baseline of DPO (§6, "Best of N", N up to 128) and of ReST (Fig. 6);
as a data source it is the Grow step of expert iteration / RAFT (RSO §5.1: "the best decoded sequence becomes the new
SFT target"). Its KL to the sampling policy has the closed form log N - (N - 1) / N (Stiennon et al. 2020), exact for
a reward without ties and an upper bound otherwise (Beirami et al. 2024).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np

from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.train import rollout as rollouts


@dataclasses.dataclass
class BestOfN:
    """The N samples of each prompt and the one picked.

    rollout: the `[prompts * n, ...]` rollout, prompt-major (prompt p's samples are rows p * n .. p * n + n - 1).
    all_rewards: float32 [prompts, n]; best_index: int [prompts], argmax over n (first on ties);
    rewards: float32 [prompts], the picked sample's reward; prompts, completions: the picked sample's texts.
    """

    rollout: rollouts.Rollout
    all_rewards: np.ndarray
    best_index: np.ndarray
    rewards: np.ndarray
    prompts: list[str]
    completions: list[str]

    @property
    def n(self) -> int:
        """Samples per prompt."""
        return self.all_rewards.shape[1]

    def all_completions(self) -> list[list[str]]:
        """Every sample's text, `[prompts][n]`."""
        n = self.n
        return [self.rollout.completions[p * n : (p + 1) * n] for p in range(len(self.prompts))]

    def first(self, m: int) -> BestOfN:
        """Best-of-`m` from the first `m` samples of each prompt (i.i.d., so a valid best-of-m draw; nested in m,
        so the picked reward never falls as m grows). The rollout keeps only those `m` samples per prompt."""
        if not 1 <= m <= self.n:
            raise ValueError(f"best-of-{m} needs 1 <= m <= n={self.n}")
        rows = (np.arange(len(self.prompts))[:, None] * self.n + np.arange(m)[None, :]).reshape(-1)
        return _pick(_take_rows(self.rollout, rows), self.all_rewards[:, :m])


def select_best(rewards: np.ndarray) -> np.ndarray:
    """Index of the highest reward of each prompt's samples, the first on ties.

    rewards: [prompts, n]. Returns int [prompts]. A non-finite reward raises, naming the prompt row.
    """
    rewards = np.asarray(rewards)
    if rewards.ndim != 2 or rewards.shape[1] < 1:
        raise ValueError(f"rewards must be [prompts, n] with n >= 1; got shape {rewards.shape}")
    bad_rows = np.flatnonzero(~np.isfinite(rewards).all(axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        raise ValueError(f"prompt row {row} has a non-finite reward among its samples: {rewards[row].tolist()}")
    return np.argmax(rewards, axis=1)


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || base policy) = log n - (n - 1) / n in nats (Stiennon et al. 2020).

    Exact when the reward has no ties; an upper bound on the true KL otherwise (Beirami et al. 2024).
    """
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1; got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n(
    policy: LanguageModel,
    prompt_texts: Sequence[str],
    prompt_ids: Sequence[Sequence[int]],
    reward_fn: rollouts.RewardFn,
    *,
    n: int,
    rng: jax.Array,
    max_new_tokens: int,
    temperature: float,
    prompt_length: int,
    prompts_per_call: int = 0,
) -> BestOfN:
    """Samples `n` responses per prompt from `policy`, scores them with `reward_fn(prompts, completions) -> [k]`
    and keeps the argmax of each prompt.

    prompt_ids: one token list per prompt, each at most `prompt_length` long. `prompts_per_call` > 0 samples that many
    prompts per sampler call (rng folded with the call index) to bound memory; 0 samples all prompts in one call.
    """
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1; got {n}")
    if len(prompt_texts) != len(prompt_ids):
        raise ValueError(f"{len(prompt_texts)} prompt texts but {len(prompt_ids)} token lists")
    chunk = prompts_per_call if prompts_per_call > 0 else len(prompt_ids)
    parts = []
    for call, start in enumerate(range(0, len(prompt_ids), chunk)):
        parts.append(
            rollouts.sample_rollout(
                policy,
                prompt_texts[start : start + chunk],
                prompt_ids[start : start + chunk],
                reward_fn,
                rng=rng if chunk == len(prompt_ids) else jax.random.fold_in(rng, call),
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                num_samples=n,
                prompt_length=prompt_length,
            )
        )
    rollout = parts[0] if len(parts) == 1 else _concat_rollouts(parts)
    return _pick(rollout, rollout.scores.reshape(len(prompt_ids), n))


def sft_rows(result: BestOfN) -> list[dict]:
    """The picked samples as SFT rows {'prompt', 'response', 'reward'} (the JSONL that configs/sft.py reads)."""
    return [
        {"prompt": prompt, "response": completion, "reward": float(reward)}
        for prompt, completion, reward in zip(result.prompts, result.completions, result.rewards)
    ]


def _pick(rollout: rollouts.Rollout, all_rewards: np.ndarray) -> BestOfN:
    best_index = select_best(all_rewards)
    n = all_rewards.shape[1]
    rows = np.arange(len(best_index)) * n + best_index
    return BestOfN(
        rollout=rollout,
        all_rewards=all_rewards,
        best_index=best_index,
        rewards=all_rewards[np.arange(len(best_index)), best_index],
        prompts=[rollout.prompts[row] for row in rows],
        completions=[rollout.completions[row] for row in rows],
    )


def _take_rows(rollout: rollouts.Rollout, rows: np.ndarray) -> rollouts.Rollout:
    arrays = rollouts.gather_rows(
        {
            "tokens": rollout.tokens,
            "attention_mask": rollout.attention_mask,
            "response_mask": rollout.response_mask,
            "sampler_logprobs": rollout.sampler_logprobs,
            "scores": rollout.scores,
        },
        rows,
    )
    return dataclasses.replace(
        rollout,
        **arrays,
        prompts=[rollout.prompts[row] for row in rows],
        completions=[rollout.completions[row] for row in rows],
    )


def _concat_rollouts(parts: Sequence[rollouts.Rollout]) -> rollouts.Rollout:
    names = ("tokens", "attention_mask", "response_mask", "sampler_logprobs", "scores")
    return dataclasses.replace(
        parts[0],
        **{name: np.concatenate([getattr(part, name) for part in parts]) for name in names},
        prompts=[text for part in parts for text in part.prompts],
        completions=[text for part in parts for text in part.completions],
    )
