"""The reward function a config names: a gold judge, a trained reward model, an LLM's d-RLAIF score, a rule-based
reward, or a weighted sum of these."""

from __future__ import annotations

import re

from rlaif_jax.feedback.d_rlaif import PREFIX as D_RLAIF_PREFIX
from rlaif_jax.feedback.d_rlaif import load_d_rlaif_reward
from rlaif_jax.rewards.gold import GOLD_REWARDS, make_gold_reward
from rlaif_jax.rewards.reward_model import PREFIX as REWARD_MODEL_PREFIX
from rlaif_jax.rewards.reward_model import RewardModelReward
from rlaif_jax.rewards.verifiable import LengthPenalty, WeightedSum, format_rewards

RULE_REWARDS = ("format", "length:MAX_WORDS")
_TERM = re.compile(r"^\s*(?:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?(\S.*?)\s*$")


def _single_reward(name: str, *, max_length: int, use_chat_template: bool, spec: str, mesh=None, rules=None):
    if name.startswith(D_RLAIF_PREFIX):
        return load_d_rlaif_reward(name[len(D_RLAIF_PREFIX) :], mesh=mesh, rules=rules)
    if name.startswith(REWARD_MODEL_PREFIX):
        return RewardModelReward(
            name[len(REWARD_MODEL_PREFIX) :],
            max_length=max_length,
            use_chat_template=use_chat_template,
            mesh=mesh,
            rules=rules,
        )
    if name == "format":
        return format_rewards
    if name.startswith("length:"):
        words = name[len("length:") :]
        if not words.isdigit():
            raise ValueError(f"reward {spec!r}: 'length:MAX_WORDS' needs an integer, got {name!r}")
        return LengthPenalty(int(words))
    if name in GOLD_REWARDS:
        return make_gold_reward(name)
    raise ValueError(
        f"reward {spec!r}: unknown reward {name!r}; expected one of {(*GOLD_REWARDS, *RULE_REWARDS)}, "
        f"'{REWARD_MODEL_PREFIX}RM_WORKDIR' or '{D_RLAIF_PREFIX}[TEMPLATE:]MODEL', or a sum 'W1*NAME1 + W2*NAME2'"
    )


def make_reward_fn(name: str, *, max_length: int, use_chat_template: bool, mesh=None, rules=None):
    """The reward function `name` names. Returns `fn(prompts, completions) -> [n]`.

    One reward: a gold reward ('toy', 'sentiment', 'arithmetic'), 'reward_model:RM_WORKDIR' (a trained reward model
    scoring sequences of up to `max_length` tokens), 'd_rlaif:[TEMPLATE:]MODEL' (an LLM's 1-10 score,
    feedback/d_rlaif.py), 'format' (1 for a reply ending 'Answer: <number>') or 'length:MAX_WORDS' (a penalty past
    MAX_WORDS words). A weighted sum of them: 'arithmetic + 0.1*format + 0.5*length:64' (terms split at '+', so a
    path inside a sum must not contain '+'); its `last_metrics` has each term's mean as 'reward/NAME'.
    A reward model is placed on `mesh` (sharded by `rules`) when one is given. Raises ValueError naming the
    unknown term.
    """
    if "+" not in name and "*" not in name:
        return _single_reward(
            name, max_length=max_length, use_chat_template=use_chat_template, spec=name, mesh=mesh, rules=rules
        )
    terms = []
    for part in name.split("+"):
        match = _TERM.match(part)
        if not match:
            raise ValueError(f"reward {name!r}: empty term in the sum (expected 'W1*NAME1 + W2*NAME2')")
        weight = float(match.group(1)) if match.group(1) else 1.0
        term = match.group(2)
        fn = _single_reward(
            term, max_length=max_length, use_chat_template=use_chat_template, spec=name, mesh=mesh, rules=rules
        )
        terms.append((weight, term, fn))
    return WeightedSum(terms)
