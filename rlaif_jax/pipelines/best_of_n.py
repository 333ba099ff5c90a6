"""The `best_of_n` job: best-of-N as an inference-time policy, and optionally as a source of SFT data.

For each n of `config.best_of_n.ns`, every held-out prompt's best-of-n sample (picked by `config.best_of_n.reward`)
is judged by `config.best_of_n.gold_reward`. One draw of max(ns) samples per prompt serves every n: best-of-n uses
the first n of them (i.i.d., so each is a valid best-of-n draw, and the curves are nested so the picked reward never
falls as n grows). Writes WORKDIR/best_of_n.json and best_of_n.md (gold reward and the analytic KL bound per n) and,
with `data_split` set, WORKDIR/best_of_n_data.jsonl: best-of-`data_n` samples of that split's prompts as SFT rows.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np

from rlaif_jax import sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import write_jsonl
from rlaif_jax.inference.best_of_n import best_of_n, best_of_n_kl, sft_rows
from rlaif_jax.models.setup import build_mesh
from rlaif_jax.pipelines.model_setup import initial_policy
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.gold import make_gold_reward

RESULTS_FILE = "best_of_n.json"
TABLE_FILE = "best_of_n.md"
DATA_FILE = "best_of_n_data.jsonl"


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table of `rows`, one column per (key, header, format spec) of `columns`."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format(row[key], spec) for key, _, spec in columns) + " |")
    return "\n".join(lines) + "\n"


def best_of_n_rows(result, gold_rewards: np.ndarray, ns: list[int]) -> list[dict]:
    """One row per n: mean picked reward, mean gold reward of the picked samples (and its standard error), the
    analytic KL bound, mean response length and the first prompt's pick.

    result: a `BestOfN` with at least max(ns) samples per prompt; gold_rewards: [prompts, result.n] of every sample.
    """
    rows = []
    num_prompts = len(result.prompts)
    for n in ns:
        picked = result.first(n)
        index = (np.arange(num_prompts), picked.best_index)
        gold = gold_rewards[:, :n][index]
        lengths = picked.rollout.response_lengths.reshape(num_prompts, n)[index]
        rows.append(
            {
                "n": n,
                "reward": float(picked.rewards.mean()),
                "gold_reward": float(gold.mean()),
                "gold_reward_sem": float(gold.std(ddof=1) / np.sqrt(num_prompts)) if num_prompts > 1 else 0.0,
                "kl_bound": best_of_n_kl(n),
                "response_length": float(lengths.mean()),
                "example": picked.completions[0],
            }
        )
    return rows


def run(config, workdir: str) -> dict:
    """Evaluates best-of-n on held-out prompts for each n of `config.best_of_n.ns`; returns {'rows': [...], ...}."""
    bon = config.best_of_n
    ns = sorted({int(n) for n in bon.ns})
    if not ns or ns[0] < 1:
        raise ValueError(f"config.best_of_n.ns={list(bon.ns)} must be a non-empty list of n >= 1")
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    policy = initial_policy(config, workdir, mesh, rules)
    prompt_length = bon.max_prompt_length

    def encode(texts, split):
        return prompt_data.encode_prompts(
            policy.tokenizer,
            texts,
            use_chat_template=bon.use_chat_template,
            max_prompt_length=prompt_length,
            source=f"{bon.task} ({split})",
        )

    def sample(texts, ids, n, rng):
        return best_of_n(
            policy,
            texts,
            ids,
            reward_fn,
            n=n,
            rng=rng,
            max_new_tokens=bon.max_new_tokens,
            temperature=bon.temperature,
            prompt_length=prompt_length,
            prompts_per_call=bon.prompts_per_call,
        )

    reward_fn = make_reward_fn(
        bon.reward, max_length=prompt_length + bon.max_new_tokens + 1, use_chat_template=bon.use_chat_template
    )
    gold_fn = make_gold_reward(bon.gold_reward)
    rng = jax.random.key(config.seed)
    prompts = prompt_data.load_prompts(bon.task, "held_out", config.seed, bon.eval_prompts)
    result = sample(prompts, encode(prompts, "held_out"), ns[-1], jax.random.fold_in(rng, 0))
    gold_rewards = np.asarray(gold_fn(result.rollout.prompts, result.rollout.completions), np.float32)
    rows = best_of_n_rows(result, gold_rewards.reshape(len(prompts), ns[-1]), ns)
    results = {"rows": rows, "reward": bon.reward, "gold_reward": bon.gold_reward, "num_prompts": len(prompts)}
    run_dir.write_json(workdir, RESULTS_FILE, results)
    table = markdown_table(
        rows,
        [
            ("n", "n", "d"),
            ("reward", f"reward ({bon.reward})", ".3f"),
            ("gold_reward", f"gold ({bon.gold_reward})", ".3f"),
            ("gold_reward_sem", "gold s.e.", ".3f"),
            ("kl_bound", "KL bound (nats)", ".3f"),
            ("response_length", "length (tokens)", ".1f"),
        ],
    )
    run_dir.write_text_atomic(
        os.path.join(workdir, TABLE_FILE), f"Best-of-n on {len(prompts)} held-out {bon.task} prompts\n\n" + table
    )
    if bon.data_split:
        data_prompts = prompt_data.load_prompts(bon.task, bon.data_split, config.seed)
        data_prompts = data_prompts[: bon.data_prompts] if bon.data_prompts > 0 else data_prompts
        picked = sample(data_prompts, encode(data_prompts, bon.data_split), bon.data_n, jax.random.fold_in(rng, 1))
        rows = [row for row in sft_rows(picked) if row["response"].strip()]  # configs/sft.py rejects empty ones
        if len(rows) < len(picked.prompts):
            logging.warning("best-of-n data: %d empty picked responses left out", len(picked.prompts) - len(rows))
        results["data_file"] = os.path.join(workdir, DATA_FILE)
        write_jsonl(rows, results["data_file"])
    return results
