"""The `online_rl` job: PPO / PPO-ptx (InstructGPT), REINFORCE with a value baseline (RLAIF App. F) and RLOO, on
any task's prompts (`config.rl.prompts`, data/prompts.py) against any named reward (rewards/by_name.py).

The loop itself is `rlaif_jax.train.rl_loop.train_policy`; this job builds its inputs. Writes WORKDIR/config.json,
metrics.jsonl, checkpoints/, eval_start.json, eval_end.json and, with `config.export_hf`, the trained policy as
WORKDIR/hf_model. Re-running the command resumes.
"""

from __future__ import annotations

import os

from rlaif_jax import models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import pretraining
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.toy import toy_rows
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.pipelines.model_setup import initial_policy
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.train import rl_loop

ALGORITHMS = rl_loop.ALGORITHMS


def ptx_batches(rl, tokenizer, seed: int):
    """PPO-ptx rows: windows of `rl.ptx_data.file` (data/pretraining.py); for the toy task without a file, the
    toy demonstrations as plain text. None when `rl.ptx_coef` is 0."""
    if rl.ptx_coef <= 0:
        return None
    ptx = rl.ptx_data
    if ptx.file:
        documents = pretraining.read_corpus(ptx.file, ptx.field)
    elif rl.prompts.task == "toy":
        documents = [row["prompt"] + row["response"] for row in toy_rows(512, seed=seed + 50_000, noise=0.0)]
    else:
        raise ValueError("config.rl.ptx_coef > 0 needs config.rl.ptx_data.file (a .txt or .jsonl text corpus)")
    max_length = ptx.max_length or rl.max_prompt_length + rl.max_new_tokens
    return pretraining.ptx_sampler(pretraining.corpus_windows(tokenizer, documents, max_length), seed)


def build_task(config, tokenizer, mesh=None, rules=None) -> rl_loop.RLTask:
    """The RL task of `config.rl`: its prompts (encoded, checked against `max_prompt_length`), reward (a reward
    model placed on `mesh`), gold judge and PPO-ptx rows."""
    rl = config.rl
    prompt_data.check_source(rl.prompts, "config.rl.prompts")

    def encode(texts, split):
        return prompt_data.encode_prompts(
            tokenizer,
            texts,
            use_chat_template=rl.use_chat_template,
            max_prompt_length=rl.max_prompt_length,
            source=f"rl.prompts ({rl.prompts.task}, {split})",
        )

    train_prompts = prompt_data.load_prompts(rl.prompts, "train", config.seed)
    eval_prompts = prompt_data.load_prompts(rl.prompts, "held_out", config.seed, rl.eval_prompts)
    reward_fn = make_reward_fn(
        rl.reward,
        max_length=rl.max_prompt_length + rl.max_new_tokens + 1,
        use_chat_template=rl.use_chat_template,
        mesh=mesh,
        rules=rules,
    )
    return rl_loop.RLTask(
        train_prompts=train_prompts,
        train_ids=encode(train_prompts, "train"),
        eval_prompts=eval_prompts,
        eval_ids=encode(eval_prompts, "held_out"),
        reward_fn=reward_fn,
        gold_fn=make_gold_reward(rl.gold_reward) if rl.gold_reward else reward_fn,
        judge=rl.gold_reward or f"trained-on reward {rl.reward} (no gold judge)",
        ptx_batch=ptx_batches(rl, tokenizer, config.seed),
    )


def run(config, workdir: str) -> dict:
    """Trains the policy for `config.train.num_steps` optimizer steps of on-policy RL; returns eval results."""
    rl_loop.check_rl_config(config.rl)
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    policy = initial_policy(config, workdir, mesh, rules)
    task = build_task(config, policy.tokenizer, mesh, rules)
    value_init = None
    if config.rl.value_init:  # InstructGPT §3.5: the value function starts from the reward model
        value_model = config.model.copy_and_resolve_references()
        with value_model.unlocked():
            value_model.name, value_model.scalar_head = config.rl.value_init, True
        value_init = build_model(value_model, mesh, rules, strict=config.mesh.get("strict", False))
    results, trained = rl_loop.train_policy(
        config, workdir, policy, task, mesh=mesh, rules=rules, value_init=value_init
    )
    if trained is not None and config.export_hf:
        models.save_hf(trained, os.path.join(workdir, "hf_model"))
    return results
