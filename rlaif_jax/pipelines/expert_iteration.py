"""The `expert_iteration` job: best-of-N then SFT, repeated (expert iteration; RAFT in RSO §5.1).

Iteration k = 1 .. `config.expert_iteration.iterations`, in WORKDIR/iter_k:
  1. best-of-n on `prompts_per_iteration` train prompts from the current policy, picked by `reward`
     -> iter_k/data.jsonl (prompt/response/reward rows; reused as they are when a re-run finds the file);
  2. SFT on those rows (`losses.sft.sft_loss_fn` through `train.loop.fit`, checkpoints in iter_k/checkpoints), starting
     from the previous iteration's params with a fresh optimizer;
  3. held-out evaluation (`policy_eval.evaluate_policy`: gold reward and sampled KL to the start policy)
     -> iter_k/eval.json.
WORKDIR/eval_start.json holds the start policy's evaluation; expert_iteration.json / .md the table over iterations.
Re-running the same command resumes: finished iterations are read back, an interrupted SFT continues from its
checkpoint.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from rlaif_jax import models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import batching
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import read_jsonl, write_jsonl
from rlaif_jax.data.sft import tokenize_prompt_response
from rlaif_jax.evaluation import policy as policy_eval
from rlaif_jax.inference.best_of_n import best_of_n, sft_rows
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models.setup import build_mesh
from rlaif_jax.pipelines.best_of_n import markdown_table
from rlaif_jax.pipelines.model_setup import initial_policy
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import model_params

DATA_FILE = "data.jsonl"
EVAL_FILE = "eval.json"
RESULTS_FILE = "expert_iteration.json"


def read_scored_rows(path: str) -> list[dict]:
    """Rows {'prompt', 'response', 'reward', ...} of a data file this job wrote. A response may be empty (a sample
    that stopped at once: trained as EOS alone); a row without a string 'response' or a numeric 'reward' raises
    naming its file and line."""
    rows = read_jsonl(path, ("prompt",))
    for row in rows:
        if not isinstance(row.get("response"), str):
            raise ValueError(f"{row['_source']}: missing or non-string 'response' (has {sorted(row)})")
        if not isinstance(row.get("reward"), (int, float)):
            raise ValueError(f"{row['_source']}: missing or non-numeric 'reward' (has {sorted(row)})")
    return rows


def run(config, workdir: str) -> dict:
    """Runs `config.expert_iteration.iterations` rounds of best-of-n -> SFT -> evaluation; returns
    {'start': eval, 'iterations': [row per finished iteration]}."""
    ei = config.expert_iteration
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    policy = initial_policy(config, workdir, mesh, rules)
    reference_params = policy.params  # the start policy: the KL reference, never trained
    prompt_length = ei.max_prompt_length

    def encode(texts, split):
        return prompt_data.encode_prompts(
            policy.tokenizer,
            texts,
            use_chat_template=ei.use_chat_template,
            max_prompt_length=prompt_length,
            source=f"{ei.task} ({split})",
        )

    train_prompts = prompt_data.load_prompts(ei.task, "train", config.seed)
    train_ids = encode(train_prompts, "train")
    eval_prompts = prompt_data.load_prompts(ei.task, "held_out", config.seed, ei.eval_prompts)
    eval_ids = encode(eval_prompts, "held_out")
    reward_fn = make_reward_fn(
        ei.reward, max_length=prompt_length + ei.max_new_tokens + 1, use_chat_template=ei.use_chat_template
    )
    gold_fn = make_gold_reward(ei.gold_reward)
    kl_fn = policy_eval.make_kl_fn(policy.module, prompt_length)
    rng = jax.random.key(config.seed)
    evaluate = lambda current: policy_eval.evaluate_policy(  # noqa: E731
        current,
        reference_params,
        eval_prompts,
        eval_ids,
        gold_fn,
        max_new_tokens=ei.max_new_tokens,
        temperature=ei.eval_temperature,
        prompt_length=prompt_length,
        kl_fn=kl_fn,
        rng=jax.random.fold_in(rng, 2),  # the same draws for every evaluation: differences are less noisy
    )
    results = {"start": run_dir.cached_json(os.path.join(workdir, "eval_start.json"), lambda: evaluate(policy))}
    rows = [{"iteration": 0, "data_reward": float("nan"), **results["start"]}]
    params = policy.params
    for iteration in range(1, ei.iterations + 1):
        iteration_dir = os.path.join(workdir, f"iter_{iteration}")
        current = policy.replace(params=params)
        data_path = os.path.join(iteration_dir, DATA_FILE)
        if not run_dir.exists(data_path):
            indices = batching.batch_indices(len(train_prompts), ei.prompts_per_iteration, iteration - 1, config.seed)
            picked = best_of_n(
                current,
                [train_prompts[i] for i in indices],
                [train_ids[i] for i in indices],
                reward_fn,
                n=ei.n,
                rng=jax.random.fold_in(jax.random.fold_in(rng, 1), iteration),
                max_new_tokens=ei.max_new_tokens,
                temperature=ei.temperature,
                prompt_length=prompt_length,
                prompts_per_call=ei.prompts_per_call,
            )
            run_dir.makedirs(iteration_dir)
            write_jsonl(sft_rows(picked), data_path)
        data = read_scored_rows(data_path)
        examples = tokenize_prompt_response(
            data,
            policy.tokenizer,
            max_length=prompt_length + ei.max_new_tokens + 1,
            use_chat_template=ei.use_chat_template,
        )
        iteration_config = config.copy_and_resolve_references()
        iteration_config.optimizer.learning_rate = config.optimizer.learning_rate * ei.lr_decay ** (iteration - 1)
        state, _, finished = fit(
            lm=current,
            loss_fn=sft_loss_fn(policy.module),
            arrays=examples.arrays,
            config=iteration_config,
            workdir=iteration_dir,
            num_steps=ei.steps_per_iteration,
            mesh=mesh,
            rules=rules,
            desc=f"expert iteration {iteration}",
        )
        if not finished:
            return results  # stopped early (config.train.stop_at_step): a re-run continues this iteration
        params = model_params(state)
        trained = policy.replace(params=params)
        evaluation = run_dir.cached_json(
            os.path.join(iteration_dir, EVAL_FILE), lambda trained=trained: evaluate(trained)
        )
        rows.append(
            {"iteration": iteration, "data_reward": float(np.mean([row["reward"] for row in data])), **evaluation}
        )
    results["iterations"] = rows[1:]
    run_dir.write_json(workdir, RESULTS_FILE, results)
    table = markdown_table(
        rows,
        [
            ("iteration", "iteration", "d"),
            ("data_reward", f"best-of-{ei.n} train reward ({ei.reward})", ".3f"),
            ("gold_reward", f"held-out gold ({ei.gold_reward})", ".3f"),
            ("kl", "KL to start (nats)", ".3f"),
            ("response_length", "length (tokens)", ".1f"),
        ],
    )
    run_dir.write_text_atomic(
        os.path.join(workdir, "expert_iteration.md"),
        f"Expert iteration (best-of-{ei.n} -> SFT) on {ei.task}\n\n" + table,
    )
    if config.export_hf:
        models.save_hf(policy.replace(params=params), os.path.join(workdir, "hf_model"))
    return results
