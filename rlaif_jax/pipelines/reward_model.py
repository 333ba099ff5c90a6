"""The `reward_model` job: a scalar-head RM trained on preferences, resumable by re-running the same command.

Pairwise (Bradley–Terry, or RLAIF's soft labels) or K-way ranked (InstructGPT eq. 1) examples -> the shared train
step with checkpoints -> held-out pairwise accuracy, the InstructGPT §3.5 bias (mean reward of demonstrations) ->
WORKDIR/reward_model.json and WORKDIR/hf_model (`models.load(dir, scalar_head=True)` reads it back). The bias is
recorded, not folded into the head: subtract `bias` from the reward so demonstrations score a mean of 0.
"""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlaif_jax import distributed, models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import hf_datasets, preferences
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.sft import tokenize_prompt_response
from rlaif_jax.losses import reward_model as rm_losses
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import model_params

SOURCES = ("toy", "jsonl", *hf_datasets.LOADERS)
LOSS_TYPES = (*rm_losses.PAIRWISE_LOSS_TYPES, "ranking")


def _as_rankings(rows: list[dict]) -> list[dict]:
    """Pairwise rows as K = 2 rankings (chosen first); ranked rows unchanged."""
    return [row if "responses" in row else {**row, "responses": [row["chosen"], row["rejected"]]} for row in rows]


def load_preference_rows(data_config, split: str, *, ranked: bool, soft_labels: bool = False) -> list[dict]:
    """Rows of `config.data` for split 'train' or 'eval' ('eval' with no eval_file: see `split_held_out`);
    `soft_labels` (loss 'soft_label'): every training JSONL row must have its 'preference'. The eval split reads
    `config.data.eval_source` when set (an RM trained on AI labels, scored on held-out human ones: RLAIF App. H).

    source 'toy': toy pairs / rankings (data/preferences.py), 'eval' from another seed; 'jsonl': pairwise or, when
    `ranked`, ranked JSONL rows; 'summarize_from_feedback' / 'hh_rlhf': the published datasets (data/hf_datasets.py).
    """
    source = data_config.source
    if split == "eval" and data_config.get("eval_source", ""):
        source = data_config.eval_source
    if source not in SOURCES:
        raise ValueError(f"config.data.source={source!r}; expected one of {SOURCES}")
    if source == "toy":
        num_rows = data_config.toy_num_pairs if split == "train" else data_config.toy_eval_pairs
        seed = data_config.seed + (0 if split == "train" else 10_000)
        if ranked:
            return preferences.toy_ranked_rows(
                num_rows, seed=seed, noise=data_config.toy_noise, num_responses=data_config.toy_num_responses
            )
        return preferences.toy_pairwise_rows(num_rows, seed=seed, noise=data_config.toy_noise)
    path = data_config.train_file if split == "train" else data_config.eval_file
    if not path:
        raise ValueError(f"config.data.{split}_file is not set (source {source!r})")
    if source == "jsonl":
        if ranked:
            return preferences.read_ranked_jsonl(path)
        return preferences.read_pairwise_jsonl(path, require_preference=soft_labels and split == "train")
    hf_split = data_config.train_split if split == "train" else data_config.eval_split
    rows = hf_datasets.load_pairs(source, path, hf_split, data_dir=data_config.get("data_dir", ""))
    return _as_rankings(rows) if ranked else rows


def split_held_out(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held out): a seeded shuffle, the last `fraction` of it held out (at least one row each)."""
    order = np.random.default_rng([seed, 1]).permutation(len(rows))
    num_held_out = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
    if num_held_out < 1:
        raise ValueError(f"{len(rows)} rows: too few to hold any out for evaluation; set config.data.eval_file")
    return [rows[i] for i in order[:-num_held_out]], [rows[i] for i in order[-num_held_out:]]


def load_preference_examples(data_config, tokenizer, *, ranked: bool, soft_labels: bool = False):
    """(train, eval) PreferenceExamples of `config.data` (`soft_labels`: see `load_preference_rows`)."""
    train_rows = load_preference_rows(data_config, "train", ranked=ranked, soft_labels=soft_labels)
    if data_config.source == "toy" or data_config.eval_file:
        eval_rows = load_preference_rows(data_config, "eval", ranked=ranked, soft_labels=soft_labels)
    else:
        num_rows = len(train_rows)
        train_rows, eval_rows = split_held_out(train_rows, data_config.eval_fraction, data_config.seed)
        logging.info("no eval_file: holding out %d of %d rows for evaluation", len(eval_rows), num_rows)
    kwargs = dict(max_length=data_config.max_length, use_chat_template=data_config.use_chat_template)
    if ranked:
        num_responses = max(len(row["responses"]) for row in train_rows + eval_rows)
        return tuple(
            preferences.tokenize_rankings(rows, tokenizer, num_responses=num_responses, **kwargs)
            for rows in (train_rows, eval_rows)
        )
    return tuple(preferences.tokenize_pairs(rows, tokenizer, **kwargs) for rows in (train_rows, eval_rows))


def make_scorer(module, mesh, rules, batch_size: int):
    """`score(params, tokens [n, seq], attention_mask [n, seq]) -> float32 [n]` rewards, `batch_size` rows at a
    time (the last batch padded with copies of row 0, so every batch has one shape and compiles once)."""
    rewards_fn = jax.jit(lambda params, tokens, mask: rm_losses.sequence_rewards(module, params, tokens, mask))

    def score(params, tokens: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        rewards = []
        for start in range(0, len(tokens), batch_size):
            rows = np.arange(start, start + batch_size)
            rows = np.where(rows < len(tokens), rows, 0)
            batch = sharding.place_batch((tokens[rows], attention_mask[rows]), mesh, rules)
            with sharding.activate(mesh, rules):
                rewards.append(distributed.to_host(rewards_fn(params, *batch)))
        return np.concatenate(rewards)[: len(tokens)]

    return score


def evaluate(score, params, examples: preferences.PreferenceExamples, loss_type: str) -> dict:
    """Held-out loss (the training loss) and pairwise accuracy (ranked data: over every valid pair)."""
    arrays = examples.arrays
    if examples.ranked:
        num_prompts, num_responses, seq = arrays["tokens"].shape
        rewards = score(
            params,
            arrays["tokens"].reshape(-1, seq),
            arrays["attention_mask"].reshape(-1, seq),
        ).reshape(num_prompts, num_responses)
        valid = jnp.asarray(arrays["valid"])
        losses = rm_losses.ranking_loss(jnp.asarray(rewards), valid)
        correct, num_pairs = rm_losses.ranking_pair_accuracy(jnp.asarray(rewards), valid)
        num_ranked = int(np.sum(arrays["valid"].sum(-1) >= 2))
        return {
            "eval_loss": float(jnp.sum(losses)) / max(num_ranked, 1),
            "eval_accuracy": float(correct) / max(float(num_pairs), 1.0),
            "num_eval_examples": num_prompts,
            "num_eval_pairs": int(num_pairs),
        }
    chosen = jnp.asarray(score(params, arrays["chosen_tokens"], arrays["chosen_attention_mask"]))
    rejected = jnp.asarray(score(params, arrays["rejected_tokens"], arrays["rejected_attention_mask"]))
    if loss_type == "soft_label":
        losses = rm_losses.soft_label_loss(chosen, rejected, jnp.asarray(arrays["preference"]))
    else:
        losses = rm_losses.bradley_terry_loss(chosen, rejected, margin=jnp.asarray(arrays["margin"]))
    return {
        "eval_loss": float(jnp.mean(losses)),
        "eval_accuracy": float(jnp.mean(rm_losses.pairwise_accuracy(chosen, rejected))),
        "num_eval_examples": len(examples),
        "num_eval_pairs": len(examples),
    }


def demonstration_arrays(data_config, tokenizer, train: preferences.PreferenceExamples) -> tuple[np.ndarray, ...]:
    """(tokens, attention_mask, description) of the sequences whose mean reward is the bias: the demonstrations of
    `config.data.demonstrations_file` (JSONL prompt/response), else the training data's chosen (best) responses."""
    if data_config.demonstrations_file:
        rows = read_jsonl(data_config.demonstrations_file, ("prompt", "response"))
        demos = tokenize_prompt_response(
            rows, tokenizer, max_length=data_config.max_length, use_chat_template=data_config.use_chat_template
        )
        return (
            demos.arrays["tokens"],
            demos.arrays["attention_mask"],
            f"demonstrations {data_config.demonstrations_file}",
        )
    if train.ranked:
        return train.arrays["tokens"][:, 0], train.arrays["attention_mask"][:, 0], "best-ranked training responses"
    return train.arrays["chosen_tokens"], train.arrays["chosen_attention_mask"], "chosen training responses"


def run(config, workdir: str) -> dict:
    """Trains a reward model; returns the last logged metrics plus the held-out evaluation and the bias."""
    run_dir.write_config(config, workdir)
    loss_type = config.loss.type
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"config.loss.type={loss_type!r}; expected one of {LOSS_TYPES}")
    ranked = loss_type == "ranking"
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    model_config = ml_collections.ConfigDict(config.model.to_dict())
    model_config.scalar_head = True  # a pretrained LM gets a zero-initialised head (models.load)
    lm = build_model(model_config, mesh, rules, strict=config.mesh.get("strict", False))
    examples, eval_examples = load_preference_examples(
        config.data, lm.tokenizer, ranked=ranked, soft_labels=loss_type == "soft_label"
    )
    train = config.train
    num_steps = train.num_steps or train.num_epochs * max(len(examples) // train.batch_size, 1)
    if num_steps <= 0:
        raise ValueError(f"no training steps: config.train.num_steps={train.num_steps}, num_epochs={train.num_epochs}")
    loss_fn = (
        rm_losses.ranking_reward_loss_fn(lm.module)
        if ranked
        else rm_losses.pairwise_reward_loss_fn(lm.module, loss_type=loss_type)
    )
    state, last_metrics, finished = fit(
        lm=lm,
        loss_fn=loss_fn,
        arrays=examples.arrays,
        config=config,
        workdir=workdir,
        num_steps=num_steps,
        mesh=mesh,
        rules=rules,
        desc="rm",
    )
    if not finished:
        return last_metrics  # stopped early: evaluation and export wait for the resumed run

    score = make_scorer(lm.module, mesh, rules, train.eval_batch_size)
    results = {
        "step": num_steps,
        "loss_type": loss_type,
        **evaluate(score, model_params(state), eval_examples, loss_type),
    }
    demo_tokens, demo_mask, bias_source = demonstration_arrays(config.data, lm.tokenizer, examples)
    demo_rewards = score(model_params(state), demo_tokens, demo_mask)
    results.update(
        bias=float(rm_losses.reward_bias(jnp.asarray(demo_rewards))),
        bias_source=bias_source,
        num_bias_examples=len(demo_rewards),
        num_train_examples=len(examples),
        num_train_truncated=examples.num_truncated,
        num_train_dropped=examples.num_dropped,
    )
    run_dir.write_json(workdir, "reward_model.json", results)
    logging.info("reward model: held-out accuracy %.3f, bias %.4f", results["eval_accuracy"], results["bias"])
    if config.export_hf:
        models.save_hf(lm.replace(params=model_params(state)), os.path.join(workdir, "hf_model"))
    return {**last_metrics, **results}
