"""The `samples` job: K responses per prompt from one policy, and response pairs to label (RLAIF §2: the SFT policy's
pairs; InstructGPT: K outputs per prompt to rank).

Writes WORKDIR/samples.jsonl ({"prompt", "responses": [K], "gold_rewards": [K] when `config.gold_reward` is set}),
WORKDIR/pairs.jsonl (responses 0 and 1 of every prompt whose two texts differ) and WORKDIR/samples.json (counts).
With a gold judge a pair is {"prompt", "chosen": response 0, "rejected": response 1, "preference": 1, 0 or 0.5 by
the gold reward}, which `ai_labels` carries along as the human label (labeler alignment with gold) and a reward
model reads with hard labels; without one it is {"prompt", "response_a", "response_b"} (no human label). With a
gold judge WORKDIR/rankings.jsonl also ranks each prompt's responses for a K-way reward model (InstructGPT §3.5):
{"prompt", "responses": best first, "rewards"}, one response per distinct gold reward (labelers rank without
ties), prompts with fewer than two distinct rewards left out.
Both files are written once, atomically; a re-run with the files present does nothing.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from rlaif_jax import models, sampling, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import write_jsonl
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.rewards.gold import make_gold_reward

SAMPLES_FILE = "samples.jsonl"
PAIRS_FILE = "pairs.jsonl"
SUMMARY_FILE = "samples.json"
RANKINGS_FILE = "rankings.jsonl"


def pair_rows(prompts, responses, gold_rewards=None) -> list[dict]:
    """Pairs of responses 0 and 1 per prompt (module docstring); identical texts carry no preference and empty ones
    cannot be labelled: both are left out. responses: [num_prompts][K] texts; gold_rewards: [num_prompts, K] or None."""
    rows = []
    for index, (prompt, texts) in enumerate(zip(prompts, responses)):
        if texts[0] == texts[1] or not texts[0].strip() or not texts[1].strip():
            continue
        if gold_rewards is None:
            rows.append({"prompt": prompt, "response_a": texts[0], "response_b": texts[1]})
            continue
        a, b = gold_rewards[index][0], gold_rewards[index][1]
        preference = 1.0 if a > b else 0.0 if a < b else 0.5
        rows.append({"prompt": prompt, "chosen": texts[0], "rejected": texts[1], "preference": preference})
    return rows


def ranking_rows(prompts, responses, gold_rewards) -> list[dict]:
    """Each prompt's responses ranked best first by gold reward, one per distinct reward (the first drawn); prompts
    with fewer than two distinct rewards are left out. gold_rewards: [num_prompts, K]."""
    rows = []
    for prompt, texts, rewards in zip(prompts, responses, gold_rewards):
        first_of_value = {}
        for text, reward in zip(texts, rewards):
            if text.strip():  # an empty response cannot be ranked or scored
                first_of_value.setdefault(float(reward), text)
        if len(first_of_value) < 2:
            continue
        ranked = sorted(first_of_value.items(), key=lambda item: -item[0])
        rows.append({"prompt": prompt, "responses": [t for _, t in ranked], "rewards": [r for r, _ in ranked]})
    return rows


def run(config, workdir: str) -> dict:
    """Samples `config.samples_per_prompt` responses to each of the source's prompts; returns the counts."""
    if config.samples_per_prompt < 2:
        raise ValueError(f"config.samples_per_prompt={config.samples_per_prompt}: a pair needs at least 2")
    prompt_data.check_source(config.prompts, "config.prompts")
    gold_fn = make_gold_reward(config.gold_reward) if config.gold_reward else None
    run_dir.write_config(config, workdir)
    summary_path = os.path.join(workdir, SUMMARY_FILE)
    if run_dir.exists(summary_path) and run_dir.exists(os.path.join(workdir, PAIRS_FILE)):
        return run_dir.cached_json(summary_path, dict)
    mesh = build_mesh(config)
    policy = build_model(
        config.model, mesh, sharding.normalize_rules(config.mesh.rules), strict=config.mesh.get("strict", False)
    )
    policy = models.with_layer_layout(policy, scan_layers=False)  # a fixed model: unstacked once, decodes faster
    prompts = prompt_data.load_prompts(config.prompts, config.split, config.seed, config.num_prompts)
    ids = prompt_data.encode_prompts(
        policy.tokenizer,
        prompts,
        use_chat_template=config.use_chat_template,
        max_prompt_length=config.max_prompt_length,
        source=f"config.prompts ({config.prompts.task}, {config.split})",
    )
    k, rng = config.samples_per_prompt, jax.random.key(config.seed)
    responses = []
    for call, start in enumerate(range(0, len(prompts), config.batch_size)):
        generated = sampling.generate(
            policy,
            ids[start : start + config.batch_size],
            max_new_tokens=config.max_new_tokens,
            rng=jax.random.fold_in(rng, call),
            temperature=config.temperature,
            num_samples=k,
        )
        responses += [generated.texts[i : i + k] for i in range(0, len(generated.texts), k)]
    gold = None
    rows = [{"prompt": p, "responses": r} for p, r in zip(prompts, responses)]
    if gold_fn is not None:
        gold = np.asarray(gold_fn([p for p in prompts for _ in range(k)], [t for r in responses for t in r]))
        gold = gold.reshape(len(prompts), k)
        for row, rewards in zip(rows, gold):
            row["gold_rewards"] = [float(x) for x in rewards]
    pairs = pair_rows(prompts, responses, gold)
    if not pairs:
        raise ValueError(f"config.prompts ({config.prompts.task}): every prompt's responses 0 and 1 are identical")
    write_jsonl(rows, os.path.join(workdir, SAMPLES_FILE))
    rankings = ranking_rows(prompts, responses, gold) if gold is not None else []
    if rankings:
        write_jsonl(rankings, os.path.join(workdir, RANKINGS_FILE))
    write_jsonl(pairs, os.path.join(workdir, PAIRS_FILE))
    summary = {
        "num_prompts": len(prompts),
        "num_pairs": len(pairs),
        "dropped_pairs": len(prompts) - len(pairs),  # identical or empty responses
        "gold_reward_mean": None if gold is None else float(gold.mean()),
        "gold_ties": None if gold is None else int(sum(row["preference"] == 0.5 for row in pairs)),
        "num_rankings": len(rankings),
    }
    run_dir.write_json(workdir, SUMMARY_FILE, summary)
    return summary
