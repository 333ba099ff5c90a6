"""The `online_rl` job: PPO / PPO-ptx (InstructGPT), REINFORCE with a value baseline (RLAIF App. F) and RLOO.

One iteration: sample a rollout from the current policy -> score it -> reference log-probs, values, advantages ->
`config.rl.epochs` passes over minibatches through the shared train step. Trainable params are
{'policy', 'value'} (no value model for RLOO); the reference policy is frozen. Checkpoints at iteration ends;
re-running the command resumes.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from rlaif_jax import models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.checkpoints.orbax_state import CheckpointManager
from rlaif_jax.data import batching
from rlaif_jax.data.toy import toy_rows
from rlaif_jax.losses import ppo, reinforce
from rlaif_jax.models.loading import abstract_params
from rlaif_jax.pipelines import policy_eval
from rlaif_jax.pipelines.model_setup import build_mesh, initial_policy
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.train import rollout as rollouts
from rlaif_jax.train.loop import check_nonfinite
from rlaif_jax.train.optimizer import make_optimizer
from rlaif_jax.train.step import init_train_state, make_train_step, train_state_shardings

ALGORITHMS = ("ppo", "reinforce", "rloo")


def _score_fn(algorithm: str, policy_module, value_module, prompt_length: int):
    """Jitted: log-probs of the response under policy and reference, and values (or None) for a rollout."""

    def score(params, reference_params, tokens, attention_mask):
        logprobs, logits = rollouts.response_logprobs(
            policy_module, params["policy"], tokens, attention_mask, prompt_length
        )
        ref_logprobs, _ = rollouts.response_logprobs(
            policy_module, reference_params, tokens, attention_mask, prompt_length
        )
        entropy = ppo.entropy_from_logits(logits)
        if algorithm == "rloo":
            values = jnp.zeros(logprobs.shape, jnp.float32)
        else:
            values = rollouts.response_values(value_module, params["value"], tokens, attention_mask, prompt_length)
        return logprobs, ref_logprobs, values, entropy

    return jax.jit(score)


def _advantages(algorithm: str, rollout, logprobs, ref_logprobs, values, kl_coef: float, config) -> dict:
    """Per-algorithm training targets, as host arrays over the rollout's rows."""
    mask = jnp.asarray(rollout.response_mask)
    scores = jnp.asarray(rollout.scores)
    if algorithm == "ppo":
        kl = ppo.kl_penalty(logprobs, ref_logprobs, kind=config.rl.kl_estimator)
        rewards = ppo.per_token_rewards(scores, kl, mask, kl_coef=kl_coef)
        advantages, returns = ppo.gae(rewards, values, mask, gamma=config.rl.gamma, lam=config.rl.lam)
        advantages = ppo.whiten(advantages, mask)
        return {"advantages": advantages, "returns": returns, "old_values": values}
    if algorithm == "reinforce":
        returns = reinforce.rlaif_returns(scores, logprobs, ref_logprobs, mask, beta=kl_coef)
        baseline = values[:, 0]  # V(x): the value head at the last prompt token
        return {"advantages": returns - baseline, "returns": returns}
    returns = reinforce.rlaif_returns(scores, logprobs, ref_logprobs, mask, beta=kl_coef)
    return {"advantages": reinforce.rloo_advantages(returns, config.rl.samples_per_prompt), "returns": returns}


def _loss_fn(algorithm, policy_module, value_module, config, prompt_length):
    rl = config.rl
    if algorithm == "ppo":
        return ppo.ppo_loss_fn(
            policy_module,
            value_module,
            prompt_length=prompt_length,
            clip_ratio=rl.clip_ratio,
            value_clip=rl.value_clip,
            value_coef=rl.value_coef,
            entropy_coef=rl.entropy_coef,
            ptx_coef=rl.ptx_coef,
        )
    if algorithm == "reinforce":
        return reinforce.reinforce_loss_fn(
            policy_module, value_module, prompt_length=prompt_length, value_coef=rl.value_coef
        )
    return reinforce.rloo_loss_fn(policy_module, prompt_length=prompt_length)


def run(config, workdir: str) -> dict:
    """Trains the policy for `config.train.num_steps` optimizer steps of on-policy RL; returns eval results."""
    rl = config.rl
    if rl.algorithm not in ALGORITHMS:
        raise ValueError(f"config.rl.algorithm={rl.algorithm!r}; expected one of {ALGORITHMS}")
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    policy = initial_policy(config, workdir, mesh, rules)
    tokenizer = policy.tokenizer
    reference_params = policy.params  # frozen: never trained (the train state holds its own copy)
    value_config = policy.config.replace(scalar_head=True)
    value_module = models.Transformer(value_config)
    params = {"policy": policy.params}
    boxed_abstract = {"policy": abstract_params(policy.config)}
    if rl.algorithm != "rloo":
        params["value"] = {
            **policy.params,
            "scalar_head": {"kernel": np.zeros(value_config.hidden_size, np.float32), "bias": np.zeros((), np.float32)},
        }
        boxed_abstract["value"] = abstract_params(value_config)

    samples = rl.samples_per_prompt if rl.algorithm == "rloo" else 1
    rollout_size = rl.prompts_per_rollout * samples
    if rollout_size % rl.minibatch_size:
        raise ValueError(f"rollout of {rollout_size} sequences is not divisible by minibatch_size={rl.minibatch_size}")
    steps_per_iteration = rl.epochs * rollout_size // rl.minibatch_size
    num_iterations = config.train.num_steps // steps_per_iteration
    optimizer = make_optimizer(config.optimizer, config.train.num_steps)
    state_shardings = train_state_shardings(boxed_abstract, optimizer, mesh, rules)
    state_shardings["kl_coef"] = state_shardings["step"]  # replicated scalar
    init = lambda p: {**init_train_state(p, optimizer), "kl_coef": jnp.float32(rl.kl_coef)}  # noqa: E731
    state = jax.jit(init, out_shardings=state_shardings)(params)  # copies: the reference keeps policy.params
    prompt_length = rl.max_prompt_length

    def encode_all(texts):
        return policy_eval.encode_prompts(
            tokenizer, texts, use_chat_template=rl.use_chat_template, max_prompt_length=prompt_length, source=rl.task
        )

    train_prompts = policy_eval.task_prompts(rl.task, "train", config.seed)
    train_ids = encode_all(train_prompts)
    eval_prompts = policy_eval.task_prompts(rl.task, "held_out", config.seed, rl.eval_prompts)
    eval_ids = encode_all(eval_prompts)
    reward_fn = policy_eval.make_reward_fn(
        rl.reward, max_length=prompt_length + rl.max_new_tokens + 1, use_chat_template=rl.use_chat_template
    )
    gold_fn = make_gold_reward(rl.gold_reward)

    checkpoints = CheckpointManager(workdir, keep=config.checkpoint.keep)
    start_step = checkpoints.latest_step() or 0
    if start_step:
        state = checkpoints.restore(start_step, state)
    train_step = make_train_step(
        _loss_fn(rl.algorithm, policy.module, value_module, config, prompt_length),
        optimizer,
        mesh=mesh,
        rules=rules,
        state_shardings=state_shardings,
    )
    score_fn = _score_fn(rl.algorithm, policy.module, value_module, prompt_length)
    kl_fn = policy_eval.make_kl_fn(policy.module, prompt_length)
    rng = jax.random.key(config.seed)
    evaluate = lambda current, eval_rng: policy_eval.evaluate_policy(  # noqa: E731
        current,
        reference_params,
        eval_prompts,
        eval_ids,
        gold_fn,
        max_new_tokens=rl.max_new_tokens,
        temperature=rl.eval_temperature,
        prompt_length=prompt_length,
        kl_fn=kl_fn,
        rng=eval_rng,
    )
    # A resumed run reads the start evaluation back, so its results have 'start' too.
    start_path = os.path.join(workdir, "eval_start.json")
    results = {"start": run_dir.cached_json(start_path, lambda: evaluate(policy, jax.random.fold_in(rng, 2)))}
    previous_length = None
    with run_dir.MetricsWriter(workdir, resume_step=start_step) as metrics_writer:
        first_iteration = start_step // steps_per_iteration
        for iteration in tqdm(range(first_iteration, num_iterations), desc=f"{rl.algorithm}", unit="iter"):
            if 0 < config.train.stop_at_step <= int(state["step"]):
                break
            start_time = time.perf_counter()
            iteration_rng = jax.random.fold_in(jax.random.fold_in(rng, 1), iteration)
            indices = batching.batch_indices(len(train_prompts), rl.prompts_per_rollout, iteration, config.seed)
            current = policy.replace(params=state["params"]["policy"])
            rollout = rollouts.sample_rollout(
                current,
                [train_prompts[i] for i in indices],
                [train_ids[i] for i in indices],
                reward_fn,
                rng=iteration_rng,
                max_new_tokens=rl.max_new_tokens,
                temperature=rl.temperature,
                num_samples=samples,
                prompt_length=prompt_length,
            )
            logprobs, ref_logprobs, values, entropy = score_fn(
                state["params"], reference_params, rollout.tokens, rollout.attention_mask
            )
            kl_coef = float(state["kl_coef"])
            targets = _advantages(rl.algorithm, rollout, logprobs, ref_logprobs, values, kl_coef, config)
            arrays = {
                "tokens": rollout.tokens,
                "attention_mask": rollout.attention_mask,
                "response_mask": rollout.response_mask,
                "old_logprobs": np.asarray(logprobs),
                **{name: np.asarray(value) for name, value in targets.items()},
            }
            if rl.algorithm == "ppo" and rl.ptx_coef > 0:
                arrays.update(_ptx_batch(tokenizer, rollout_size, iteration, config))
            train_metrics = []
            for epoch in range(rl.epochs):
                order = np.random.default_rng([config.seed, iteration, epoch]).permutation(rollout_size)
                for start in range(0, rollout_size, rl.minibatch_size):
                    minibatch = rollouts.gather_rows(arrays, order[start : start + rl.minibatch_size])
                    state, metrics = train_step(state, minibatch, rng, reference_params)
                    train_metrics.append(jax.device_get(metrics))
            mask = rollout.response_mask
            log_ratio = np.where(mask, np.asarray(logprobs) - np.asarray(ref_logprobs), 0.0)
            sequence_kl = log_ratio.sum(axis=1)
            if rl.adaptive_kl:
                state["kl_coef"] = jnp.float32(
                    ppo.adaptive_kl_update(
                        kl_coef,
                        float(sequence_kl.mean()),
                        target=rl.kl_target,
                        horizon=rl.kl_horizon,
                        num_steps=rollout_size,
                    )
                )
            lengths = rollout.response_lengths
            logged = {name: float(np.mean([m[name] for m in train_metrics])) for name in train_metrics[0]}
            logged.update(
                reward_mean=float(rollout.scores.mean()),
                reward_std=float(rollout.scores.std()),
                kl=float(sequence_kl.mean()),
                kl_coef=kl_coef,
                entropy=float(np.where(mask, np.asarray(entropy), 0.0).sum() / max(mask.sum(), 1)),
                response_length=float(lengths.mean()),
                tokens_per_s=float(rollout.attention_mask.sum() / (time.perf_counter() - start_time)),
            )
            if rl.algorithm != "rloo":
                logged["explained_variance"] = float(
                    ppo.explained_variance(
                        values if rl.algorithm == "ppo" else jnp.broadcast_to(values[:, :1], values.shape),
                        jnp.asarray(targets["returns"])
                        if rl.algorithm == "ppo"
                        else jnp.broadcast_to(jnp.asarray(targets["returns"])[:, None], values.shape),
                        jnp.asarray(mask),
                    )
                )
            _health_warnings(logged, previous_length, int(state["step"]))
            check_nonfinite(float(state["nonfinite_steps"]), config.train.max_nonfinite_steps, int(state["step"]))
            previous_length = logged["response_length"]
            metrics_writer.write(int(state["step"]), logged)
            stopping = 0 < config.train.stop_at_step <= int(state["step"])
            if (iteration + 1) % config.checkpoint.every_iterations == 0 or iteration + 1 == num_iterations or stopping:
                checkpoints.save(int(state["step"]), state)
    checkpoints.close()
    if int(state["step"]) < num_iterations * steps_per_iteration:
        return results  # stopped early: the end-of-run evaluation waits for the resumed run
    final_policy = policy.replace(params=state["params"]["policy"])
    results["end"] = evaluate(final_policy, jax.random.fold_in(rng, 3))
    run_dir.write_json(workdir, "eval_end.json", results["end"])
    return results


def _ptx_batch(tokenizer, size: int, iteration: int, config) -> dict:
    """PPO-ptx pretraining rows (InstructGPT eq. 2): demonstrations of the task, as SFT arrays prefixed 'ptx_'."""
    from rlaif_jax.data.sft import tokenize_prompt_response

    rows = toy_rows(size, seed=config.seed + 50_000 + iteration, noise=0.0) if config.rl.task == "toy" else None
    if rows is None:
        raise ValueError("rl.ptx_coef > 0 needs pretraining rows; only the toy task defines them so far")
    examples = tokenize_prompt_response(
        rows,
        tokenizer,
        max_length=config.rl.max_prompt_length + config.rl.max_new_tokens,
        use_chat_template=config.rl.use_chat_template,
    )
    return {f"ptx_{name}": value for name, value in examples.arrays.items()}


def _health_warnings(metrics: dict, previous_length: float | None, step: int) -> None:
    """The alarms of RELIABILITY #22: negative KL, runaway importance ratios, response-length jumps."""
    if metrics["kl"] < -1:
        logging.warning(
            "step %d: KL to the reference is %.3f < -1 (estimator or sampler/trainer mismatch)", step, metrics["kl"]
        )
    if metrics.get("ratio_max", 0.0) > 10:
        logging.warning("step %d: importance ratio reached %.1f > 10", step, metrics["ratio_max"])
    if previous_length and abs(metrics["response_length"] - previous_length) > max(0.5 * previous_length, 4):
        logging.warning(
            "step %d: mean response length jumped %.1f -> %.1f", step, previous_length, metrics["response_length"]
        )
