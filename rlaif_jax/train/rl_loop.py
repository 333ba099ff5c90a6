"""The on-policy RL loop shared by every job that trains a policy online: PPO / PPO-ptx (InstructGPT), REINFORCE
with a value baseline (RLAIF App. F), RLOO and the GRPO family (GRPO, Dr. GRPO, DAPO, GSPO: `rl.loss`).

One iteration: sample a rollout from the current policy -> score it (`task.reward_fn`) -> log-probs under policy and
reference, values, advantages -> `config.rl.epochs` passes over minibatches through the shared train step.
Trainable params are {'policy', 'value'} (no value model for RLOO and GRPO); the reference policy is frozen.
Log-probs, the KL and the importance ratios are all taken at the sampling temperature `rl.temperature`, the
distribution the rollout was drawn from (full softmax: RL rollouts use no top-k/top-p). Every iteration logs the
sampler-trainer gap `sampler_gap_mean` / `sampler_gap_max`: |Δ log p| over response tokens between the sampler's
own log-probs and the trainer's recomputation with the same parameters, and `compiles`, the XLA compilations since
the loop started (flat once every bucketed shape has been seen). `rl.tis_cap` > 0 reweights every loss's
per-token policy term by min(π_trainer / π_sampler, C) (truncated importance sampling).
Less work for the same values: with `rl.shared_prefix` the k samples of a prompt run the prompt once, in scoring
and in the train step (minibatches are then whole groups); only scored positions reach the LM head; and with
`rl.old_logprobs='sampler'` the sampler's own log-probs are π_old, which skips the policy pass over the rollout
(and with it the sampler-gap log).
Checkpoints at iteration ends (and at the next one after SIGTERM / SIGINT); calling `train_policy` again in the
same workdir resumes.

Fork point for new RL methods: `make_targets` (advantages) and `make_loss_fn` (the loss), both pure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from rlaif_jax import distributed, models, monitoring, preemption, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.checkpoints.orbax_state import CheckpointManager
from rlaif_jax.data import batching
from rlaif_jax.evaluation import policy as policy_eval
from rlaif_jax.losses import grpo, ppo, reinforce
from rlaif_jax.losses.logprobs import (
    groups_share_prompts,
    response_logprobs,
    response_logprobs_and_entropy,
    response_values,
)
from rlaif_jax.models import lora
from rlaif_jax.models.loading import LanguageModel, abstract_params
from rlaif_jax.train import rollout as rollouts
from rlaif_jax.train.degenerate import DegenerateBatchWarnings
from rlaif_jax.train.loop import check_nonfinite
from rlaif_jax.train.optimizer import make_optimizer
from rlaif_jax.train.step import (
    FROZEN_PARAMS,
    checkpointed,
    init_train_state,
    make_train_step,
    model_params,
    train_state_shardings,
)

ALGORITHMS = ("ppo", "reinforce", "rloo", "grpo")
GROUP_ALGORITHMS = ("rloo", "grpo")  # k samples per prompt, no value model
OLD_LOGPROBS = ("trainer", "sampler")  # π_old of the ratio: recomputed by the trainer, or the sampler's own
BASELINES = ("prompt", "per_token")  # REINFORCE: V(x) at the last prompt token, or V(x, y_<t) at every token
EVAL_START_FILE = "eval_start.json"
EVAL_END_FILE = "eval_end.json"


@dataclasses.dataclass
class RLTask:
    """What the loop trains on: prompt texts and their token ids (left-padded to `rl.max_prompt_length`), the
    trained-on reward, the evaluation's gold judge, and (PPO-ptx) `ptx_batch(size, iteration) -> arrays` of
    pretraining rows prefixed 'ptx_' (tokens, attention_mask, loss_mask `[size, L]`)."""

    train_prompts: Sequence[str]
    train_ids: Sequence[Sequence[int]]
    eval_prompts: Sequence[str]
    eval_ids: Sequence[Sequence[int]]
    reward_fn: Callable
    gold_fn: Callable
    judge: str = "gold"
    ptx_batch: Callable[[int, int], dict] | None = None


def check_rl_config(rl) -> None:
    """Raises ValueError naming the key of an `rl` block the loop cannot run."""
    if rl.algorithm not in ALGORITHMS:
        raise ValueError(f"config.rl.algorithm={rl.algorithm!r}; expected one of {ALGORITHMS}")
    if rl.baseline not in BASELINES:
        raise ValueError(f"config.rl.baseline={rl.baseline!r}; expected one of {BASELINES}")
    if rl.temperature <= 0:
        raise ValueError(f"config.rl.temperature={rl.temperature}: on-policy RL samples, so it must be > 0")
    if rl.algorithm in GROUP_ALGORITHMS and rl.samples_per_prompt < 2:
        raise ValueError(
            f"config.rl.samples_per_prompt={rl.samples_per_prompt}: {rl.algorithm} normalises over each prompt's "
            "samples, so it needs at least 2"
        )
    if rl.old_logprobs not in OLD_LOGPROBS:
        raise ValueError(f"config.rl.old_logprobs={rl.old_logprobs!r}; expected one of {OLD_LOGPROBS}")
    if rl.old_logprobs == "sampler" and rl.tis_cap:
        raise ValueError(
            "config.rl.tis_cap > 0 with config.rl.old_logprobs='sampler': TIS reweights by π_trainer / π_sampler, "
            "which is 1 when the sampler's log-probs are the old ones (use old_logprobs='trainer')"
        )
    if rl.tis_cap < 0:
        raise ValueError(f"config.rl.tis_cap={rl.tis_cap}; expected >= 0 (0 = no truncated importance sampling)")
    if not 0 <= rl.overlong_cache <= rl.max_new_tokens:
        raise ValueError(f"config.rl.overlong_cache={rl.overlong_cache}; expected 0 (off) .. max_new_tokens")
    if rl.algorithm != "grpo":
        return
    if rl.loss not in grpo.LOSSES:
        raise ValueError(f"config.rl.loss={rl.loss!r}; expected one of {grpo.LOSSES}")
    if rl.clip_ratio_high and rl.clip_ratio_high < rl.clip_ratio:
        raise ValueError(
            f"config.rl.clip_ratio_high={rl.clip_ratio_high} < config.rl.clip_ratio={rl.clip_ratio}: clip-higher "
            "needs ε_high >= ε_low (0 = the same as clip_ratio)"
        )
    if rl.adaptive_kl and not rl.kl_in_reward:
        raise ValueError("config.rl.adaptive_kl needs config.rl.kl_in_reward=True for grpo (the loss's β is fixed)")


def samples_per_prompt(rl) -> int:
    """Responses drawn per prompt in a rollout: the group size k of RLOO / GRPO, else 1."""
    return rl.samples_per_prompt if rl.algorithm in GROUP_ALGORITHMS else 1


def clip_range(rl) -> tuple[float, float]:
    """(ε_low, ε_high) of the GRPO family: `rl.clip_ratio`, and `rl.clip_ratio_high` or the same (0)."""
    return rl.clip_ratio, rl.clip_ratio_high or rl.clip_ratio


def make_score_fn(rl, policy_module, value_module, prompt_length: int, group_size: int = 1):
    """Jitted `(params, reference_params, tokens, attention_mask) -> dict` of `[n, R]` arrays over the response at
    temperature `rl.temperature`: 'ref_logprobs'; 'values' (PPO / REINFORCE); and, unless `rl.old_logprobs` is
    'sampler' (then the sampler's own log-probs stand in and the policy pass is skipped), the trainer's 'logprobs'
    and 'entropy'. `group_size` > 1: groups of that many consecutive rows share a prompt, run once; only with
    'sampler': the trainer's recomputation is the plain full pass (for policy and reference alike, so the KL at the
    start is exactly 0), and the logged sampler gap measures the sampler against it, not against the sharing
    (both paths agree to float rounding: tests/losses/test_response_logprobs.py)."""
    temperature = rl.temperature
    if rl.old_logprobs == "trainer":
        group_size = 1

    def score(params, reference_params, tokens, attention_mask):
        scored = {}
        options = dict(temperature=temperature, group_size=group_size)
        scored["ref_logprobs"] = response_logprobs(
            policy_module, reference_params, tokens, attention_mask, prompt_length, **options
        )
        if rl.old_logprobs == "trainer":
            scored["logprobs"], scored["entropy"] = response_logprobs_and_entropy(
                policy_module, params["policy"], tokens, attention_mask, prompt_length, **options
            )
        if rl.algorithm not in GROUP_ALGORITHMS:
            scored["values"] = response_values(value_module, params["value"], tokens, attention_mask, prompt_length)
        return scored

    return jax.jit(score)


def prefix_group_sizes(rl) -> tuple[int, int]:
    """(rows per shared prompt when scoring a rollout, the same in the train step's minibatches).

    With `rl.shared_prefix` the k samples of a prompt run its prompt once (1 = off). Minibatches share prompts
    only when `rl.minibatch_size` holds whole groups; the loop then shuffles groups rather than rows."""
    group = samples_per_prompt(rl) if rl.shared_prefix else 1
    return group, group if rl.minibatch_size % group == 0 else 1


def minibatch_order(rollout_size: int, group_size: int, seed) -> np.ndarray:
    """A permutation of the rollout's rows `[rollout_size]`: of whole consecutive groups when `group_size` > 1."""
    shuffle = np.random.default_rng(seed)
    if group_size == 1:
        return shuffle.permutation(rollout_size)
    groups = shuffle.permutation(rollout_size // group_size)
    return (groups[:, None] * group_size + np.arange(group_size)).reshape(-1)


def make_targets(rl, scores, response_mask, logprobs, ref_logprobs, values, kl_coef: float) -> dict:
    """Per-algorithm training targets of a rollout (host or device arrays in, jax arrays out).

    scores: [n] rewards; response_mask, logprobs, ref_logprobs, values: [n, R].
    ppo: per-token rewards (score on the last token, -kl_coef * KL on every token), GAE advantages (whitened),
      returns and old values, all [n, R].
    reinforce: returns Z = (1 - β)·score - β·KL [n]; advantages Z - V(x) [n] ('prompt' baseline) or
      Z - V(x, y_<t) [n, R] ('per_token', RLAIF App. F).
    rloo: Z [n] and leave-one-out advantages [n] over each prompt's `rl.samples_per_prompt` samples.
    grpo: group-normalised advantages [n] of the score (Dr. GRPO: centred only), and `ref_logprobs` for the loss's
      k3 term; with `rl.kl_in_reward` the score is first `score - β·Σ_t (log π - log π_ref)` and the loss has no KL.
    """
    mask = jnp.asarray(response_mask)
    scores = jnp.asarray(scores)
    if rl.algorithm == "grpo":
        returns = scores.astype(jnp.float32)
        if rl.kl_in_reward:
            sequence_kl = jnp.sum(ppo.kl_penalty(logprobs, ref_logprobs, kind="k1", mask=mask), axis=-1)
            returns = returns - kl_coef * sequence_kl
        advantages = grpo.group_advantages(returns, rl.samples_per_prompt, scale=rl.loss != "dr_grpo")
        return {"advantages": advantages, "returns": returns, "ref_logprobs": jnp.asarray(ref_logprobs)}
    if rl.algorithm == "ppo":
        kl = ppo.kl_penalty(logprobs, ref_logprobs, kind=rl.kl_estimator)
        rewards = ppo.per_token_rewards(scores, kl, mask, kl_coef=kl_coef)
        advantages, returns = ppo.gae(rewards, values, mask, gamma=rl.gamma, lam=rl.lam)
        return {"advantages": ppo.whiten(advantages, mask), "returns": returns, "old_values": values}
    returns = reinforce.rlaif_returns(scores, logprobs, ref_logprobs, mask, beta=kl_coef)
    if rl.algorithm == "rloo":
        return {"advantages": reinforce.rloo_advantages(returns, rl.samples_per_prompt), "returns": returns}
    if rl.baseline == "per_token":
        return {"advantages": jnp.where(mask, returns[:, None] - values, 0.0), "returns": returns}
    return {"advantages": returns - values[:, 0], "returns": returns}  # V(x): the head at the last prompt token


def make_loss_fn(rl, policy_module, value_module, prompt_length: int, group_size: int = 1):
    """The `loss_fn(params, batch, rng, frozen)` of `rl.algorithm` for `make_train_step` (`group_size`: minibatch
    rows per shared prompt, see `prefix_group_sizes`)."""
    if rl.algorithm == "ppo":
        return ppo.ppo_loss_fn(
            policy_module,
            value_module,
            prompt_length=prompt_length,
            clip_ratio=rl.clip_ratio,
            value_clip=rl.value_clip,
            value_coef=rl.value_coef,
            entropy_coef=rl.entropy_coef,
            ptx_coef=rl.ptx_coef,
            temperature=rl.temperature,
            group_size=group_size,
        )
    if rl.algorithm == "reinforce":
        return reinforce.reinforce_loss_fn(
            policy_module,
            value_module,
            prompt_length=prompt_length,
            value_coef=rl.value_coef,
            baseline=rl.baseline,
            temperature=rl.temperature,
            group_size=group_size,
        )
    if rl.algorithm == "grpo":
        eps_low, eps_high = clip_range(rl)
        return grpo.grpo_loss_fn(
            policy_module,
            loss=rl.loss,
            prompt_length=prompt_length,
            max_new_tokens=rl.max_new_tokens,
            eps_low=eps_low,
            eps_high=eps_high,
            kl_coef=0.0 if rl.kl_in_reward else rl.kl_coef,
            temperature=rl.temperature,
            group_size=group_size,
        )
    return reinforce.rloo_loss_fn(
        policy_module, prompt_length=prompt_length, temperature=rl.temperature, group_size=group_size
    )


def make_rl_optimizer(config, num_steps: int):
    """`config.optimizer` for the policy; with `config.rl.value_learning_rate` > 0 the value network gets the same
    optimizer at that peak learning rate (InstructGPT C.4 gives the value LR; each group is clipped by its own
    global norm). Params are {'policy', 'value'} (RLOO, GRPO: {'policy'})."""
    policy_optimizer = make_optimizer(config.optimizer, num_steps)
    value_lr = config.rl.value_learning_rate
    if value_lr < 0:
        raise ValueError(f"config.rl.value_learning_rate={value_lr}; expected >= 0 (0 = config.optimizer's)")
    if not value_lr or config.rl.algorithm in GROUP_ALGORITHMS:
        return policy_optimizer
    value_config = config.optimizer.copy_and_resolve_references()
    value_config.learning_rate = value_lr

    def labels(params):  # every leaf under params['policy'] is 'policy', under params['value'] 'value'
        return {group: jax.tree.map(lambda _, group=group: group, tree) for group, tree in params.items()}

    return optax.multi_transform({"policy": policy_optimizer, "value": make_optimizer(value_config, num_steps)}, labels)


def initial_params(rl, policy: LanguageModel, value_init: LanguageModel | None = None) -> tuple[dict, dict, object]:
    """(params, boxed abstract params, value module config) of the train state: {'policy'} plus, except for RLOO/GRPO,
    {'value'}: `value_init`'s params when given (InstructGPT §3.5 starts the value function from the reward model;
    it must have a scalar head and the policy's architecture), else the policy's with a zero scalar head."""
    value_config = policy.config.replace(scalar_head=True)
    params = {"policy": policy.params}
    boxed = {"policy": abstract_params(policy.config)}
    if rl.algorithm in GROUP_ALGORITHMS:
        return params, boxed, value_config
    if value_init is not None:
        if "scalar_head" not in value_init.params:
            raise ValueError("the value model's initialisation has no scalar head (load it with scalar_head=True)")
        value_config = value_init.config
        params["value"] = value_init.params
    else:
        head = {"kernel": np.zeros(value_config.hidden_size, np.float32), "bias": np.zeros((), np.float32)}
        params["value"] = {**policy.params, "scalar_head": head}
    boxed["value"] = abstract_params(value_config)
    return params, boxed, value_config


def split_trainable_models(params: dict, model_configs: dict) -> tuple[dict, dict | None]:
    """(trained, frozen) of {'policy', 'value'} params: per model `lora.split_trainable` (everything trains without
    LoRA); frozen is None when no model has frozen weights."""
    trained, frozen = {}, {}
    for name, model in params.items():
        trained[name], frozen_part = lora.split_trainable(model, model_configs[name])
        if frozen_part is not None:
            frozen[name] = frozen_part
    return trained, (frozen or None)


def train_policy(
    config, workdir: str, policy: LanguageModel, task: RLTask, *, mesh, rules, value_init=None
) -> tuple[dict, LanguageModel | None]:
    """Trains `policy` for `config.train.num_steps` optimizer steps of on-policy RL (`config.rl`,
    `config.optimizer`, `config.checkpoint`); resumes from WORKDIR/checkpoints.

    SIGTERM / SIGINT stop it at the next iteration boundary with a checkpoint (`preemption.Preempted`).
    Writes WORKDIR/metrics.jsonl (one row per iteration: reward, KL, losses, ...), eval_start.json and, when the run
    reached its last step, eval_end.json (held-out reward by `task.judge` under the key 'gold_reward', and KL, of
    one sample per eval prompt). Returns
    ({'start': eval, 'end': eval}, the trained policy); when stopped early by `config.train.stop_at_step`, 'end'
    is missing and the policy is None.
    """
    rl = config.rl
    check_rl_config(rl)
    reference_params = policy.params  # frozen: never trained (the train state holds its own copy)
    params, boxed_abstract, value_config = initial_params(rl, policy, value_init)
    value_module = models.Transformer(value_config)
    samples = samples_per_prompt(rl)
    rollout_size = rl.prompts_per_rollout * samples
    if rollout_size % rl.minibatch_size:
        raise ValueError(f"rollout of {rollout_size} sequences is not divisible by minibatch_size={rl.minibatch_size}")
    sharding.check_batch_size(rl.minibatch_size, mesh, rules, key="config.rl.minibatch_size")
    steps_per_iteration = rl.epochs * rollout_size // rl.minibatch_size
    num_iterations = config.train.num_steps // steps_per_iteration
    if num_iterations < 1:
        raise ValueError(
            f"config.train.num_steps={config.train.num_steps} is less than one iteration ({steps_per_iteration} steps)"
        )
    if rl.ptx_coef > 0 and task.ptx_batch is None:
        raise ValueError("config.rl.ptx_coef > 0 but the task has no pretraining rows (config.rl.ptx_data)")
    optimizer = make_rl_optimizer(config, config.train.num_steps)
    model_configs = {"policy": policy.config, "value": value_config}
    trained, frozen_params = split_trainable_models(params, model_configs)
    abstract_trained, _ = split_trainable_models(boxed_abstract, model_configs)
    state_shardings = train_state_shardings(abstract_trained, optimizer, mesh, rules)
    state_shardings["kl_coef"] = state_shardings["step"]  # replicated scalar
    init = lambda p: {**init_train_state(p, optimizer), "kl_coef": jnp.float32(rl.kl_coef)}  # noqa: E731
    state = jax.jit(init, out_shardings=state_shardings)(trained)  # copies: the reference keeps policy.params
    prompt_length = rl.max_prompt_length

    checkpoints = CheckpointManager(workdir, keep=config.checkpoint.keep)
    start_step = checkpoints.resume_step(config.train.num_steps)
    if start_step:
        state = checkpoints.restore(start_step, state)
    if frozen_params is not None:  # LoRA: the base weights, shared with the reference policy, never copied
        state[FROZEN_PARAMS] = frozen_params
    score_group, train_group = prefix_group_sizes(rl)
    train_step = make_train_step(
        make_loss_fn(rl, policy.module, value_module, prompt_length, train_group),
        optimizer,
        mesh=mesh,
        rules=rules,
        state_shardings=state_shardings,
    )
    score_fn = make_score_fn(rl, policy.module, value_module, prompt_length, score_group)
    targets_fn = jax.jit(lambda *args: make_targets(rl, *args))
    kl_fn = policy_eval.make_kl_fn(policy.module, prompt_length, temperature=rl.eval_temperature)
    rng = jax.random.key(config.seed)
    evaluate = lambda current, eval_rng: (
        {"judge": task.judge}
        | policy_eval.evaluate_policy(  # noqa: E731
            current,
            reference_params,
            task.eval_prompts,
            task.eval_ids,
            task.gold_fn,
            max_new_tokens=rl.max_new_tokens,
            temperature=rl.eval_temperature,
            prompt_length=prompt_length,
            kl_fn=kl_fn,
            rng=eval_rng,
        )
    )
    # A resumed run reads the start evaluation back, so its results have 'start' too.
    start_path = os.path.join(workdir, EVAL_START_FILE)
    results = {"start": run_dir.cached_json(start_path, lambda: evaluate(policy, jax.random.fold_in(rng, 2)))}
    previous_length = None
    degenerate = DegenerateBatchWarnings()
    compiles_before = monitoring.compile_totals()
    with (
        contextlib.closing(checkpoints),  # finishes a save in flight, also when an iteration raised
        preemption.StopOnSignal() as stop,
        run_dir.MetricsWriter(workdir, resume_step=start_step) as metrics_writer,
    ):
        first_iteration = start_step // steps_per_iteration
        for iteration in tqdm(
            range(first_iteration, num_iterations),
            initial=first_iteration,
            total=num_iterations,
            desc=rl.algorithm,
            unit="iter",
        ):
            if 0 < config.train.stop_at_step <= int(state["step"]):
                break
            start_time = time.perf_counter()
            iteration_rng = jax.random.fold_in(jax.random.fold_in(rng, 1), iteration)
            indices = batching.batch_indices(len(task.train_prompts), rl.prompts_per_rollout, iteration, config.seed)
            current = policy.replace(params=model_params(state)["policy"])
            rollout = rollouts.sample_rollout(
                current,
                [task.train_prompts[i] for i in indices],
                [task.train_ids[i] for i in indices],
                task.reward_fn,
                rng=iteration_rng,
                max_new_tokens=rl.max_new_tokens,
                temperature=rl.temperature,
                num_samples=samples,
                prompt_length=prompt_length,
            )
            rollout_seconds = time.perf_counter() - start_time  # sampling and the reward
            step_before = int(state["step"])
            equal_groups = degenerate.check_rewards(
                step_before + 1, rollout.scores, samples if rl.algorithm in GROUP_ALGORITHMS else None
            )
            if not groups_share_prompts(rollout.tokens, prompt_length, score_group):
                raise RuntimeError("rollout rows are not prompt-major: shared-prefix scoring would be wrong")
            truncated = rollouts.truncated_responses(rollout, policy.config.eos_token_ids)
            train_mask, dropped_groups = update_mask(rl, rollout, truncated)
            scores = rollout.scores
            if rl.overlong_cache:  # DAPO's soft overlong punishment
                penalty = grpo.overlong_penalty(
                    rollout.response_lengths, max_length=rl.max_new_tokens, cache_length=rl.overlong_cache
                )
                scores = scores + np.asarray(penalty)
            # From here on the rollout lives on the mesh, split by rows: scoring, targets and minibatches run there.
            on_mesh = sharding.place_batch(
                {
                    "tokens": rollout.tokens,
                    "attention_mask": rollout.attention_mask,
                    "response_mask": rollout.response_mask,
                    "train_mask": train_mask,
                    "sampling_logprobs": rollout.sampling_logprobs,
                    "scores": scores,
                },
                mesh,
                rules,
            )
            with sharding.activate(mesh, rules):
                scored = score_fn(model_params(state), reference_params, on_mesh["tokens"], on_mesh["attention_mask"])
                logprobs = scored["logprobs"] if "logprobs" in scored else on_mesh["sampling_logprobs"]
                kl_coef = float(state["kl_coef"])
                targets = targets_fn(
                    on_mesh["scores"],
                    on_mesh["response_mask"],
                    logprobs,
                    scored["ref_logprobs"],
                    scored.get("values"),
                    kl_coef,
                )
                arrays = {
                    "tokens": on_mesh["tokens"],
                    "attention_mask": on_mesh["attention_mask"],
                    "response_mask": on_mesh["train_mask"],
                    "old_logprobs": logprobs,
                    **targets,
                }
                if rl.tis_cap:
                    arrays["tis_weights"] = grpo.tis_weights(
                        logprobs, on_mesh["sampling_logprobs"], on_mesh["train_mask"], cap=rl.tis_cap
                    )
            if rl.algorithm == "ppo" and rl.ptx_coef > 0:
                arrays.update(sharding.place_batch(task.ptx_batch(rollout_size, iteration), mesh, rules))
            train_metrics = []
            for epoch in range(rl.epochs):
                order = minibatch_order(rollout_size, train_group, [config.seed, iteration, epoch])
                for start in range(0, rollout_size, rl.minibatch_size):
                    minibatch = sharding.take_rows(arrays, order[start : start + rl.minibatch_size], mesh, rules)
                    state, metrics = train_step(state, minibatch, rng, reference_params)
                    train_metrics.append(jax.device_get(metrics))
            # What the host logs, gathered from every process in one place.
            host = distributed.to_host(
                {
                    "logprobs": logprobs,
                    "ref_logprobs": scored["ref_logprobs"],
                    "entropy": scored.get("entropy"),
                    "values": scored.get("values"),
                    "returns": targets["returns"],
                }
            )
            mask = rollout.response_mask
            log_ratio = np.where(mask, host["logprobs"] - host["ref_logprobs"], 0.0)
            sequence_kl = log_ratio.sum(axis=1)
            if rl.adaptive_kl:
                new_kl_coef = ppo.adaptive_kl_update(
                    kl_coef,
                    float(sequence_kl.mean()),
                    target=rl.kl_target,
                    horizon=rl.kl_horizon,
                    num_steps=rollout_size,
                )
                state["kl_coef"] = jax.device_put(np.float32(new_kl_coef), state_shardings["kl_coef"])
            degenerate.check_steps(
                range(step_before + 1, step_before + 1 + len(train_metrics)),
                [m["finite"] for m in train_metrics],
                [m["loss_count"] for m in train_metrics],
            )
            logged = {name: float(np.mean([m[name] for m in train_metrics])) for name in train_metrics[0]}
            if "logprobs" in scored:  # with old_logprobs='sampler' there is no recomputation to compare
                gap = np.where(mask, np.abs(host["logprobs"] - rollout.sampling_logprobs), 0.0)
                logged.update(
                    sampler_gap_mean=float(gap.sum() / max(mask.sum(), 1)),
                    sampler_gap_max=float(gap.max()),
                    entropy=float(np.where(mask, host["entropy"], 0.0).sum() / max(mask.sum(), 1)),
                )
            logged["truncated_fraction"] = float(truncated.mean())
            if rl.algorithm in GROUP_ALGORITHMS:
                logged["groups_dropped"] = float(dropped_groups)
                logged["zero_variance_groups"] = float(equal_groups)
            logged.update(getattr(task.reward_fn, "last_metrics", {}))  # rule-based rewards' counts and term means
            compiles = monitoring.compile_totals()  # since the loop started: flat after the first iterations
            logged["compiles"] = compiles["compiles"] - compiles_before["compiles"]
            logged["compile_seconds"] = compiles["compile_seconds"] - compiles_before["compile_seconds"]
            logged.update(
                reward_mean=float(rollout.scores.mean()),
                reward_std=float(rollout.scores.std()),
                kl=float(sequence_kl.mean()),
                kl_coef=kl_coef,
                response_length=float(rollout.response_lengths.mean()),
                tokens_per_s=float(rollout.attention_mask.sum() / (time.perf_counter() - start_time)),
                rollout_seconds=rollout_seconds,
                update_seconds=time.perf_counter() - start_time - rollout_seconds,  # log-probs, targets, steps
            )
            if rl.algorithm not in GROUP_ALGORITHMS:
                logged["explained_variance"] = _explained_variance(rl, host["values"], host["returns"], mask)
            health_warnings(logged, previous_length, int(state["step"]))
            check_nonfinite(
                float(state["nonfinite_steps"]),
                config.train.max_nonfinite_steps,
                int(state["step"]),
                degenerate.first.get("nonfinite"),
            )
            previous_length = logged["response_length"]
            metrics_writer.write(int(state["step"]), logged)
            signalled = iteration + 1 < num_iterations and preemption.stop_requested(stop)
            stopping = signalled or 0 < config.train.stop_at_step <= int(state["step"])
            if (iteration + 1) % config.checkpoint.every_iterations == 0 or iteration + 1 == num_iterations or stopping:
                checkpoints.save(int(state["step"]), checkpointed(state))
            if signalled:  # the next iteration's prompts and RNG follow from its index: nothing else to save
                checkpoints.wait_until_finished()
                raise preemption.Preempted(int(state["step"]), workdir)
    if int(state["step"]) < num_iterations * steps_per_iteration:
        return results, None  # stopped early: the end-of-run evaluation waits for the resumed run
    final_policy = policy.replace(params=model_params(state)["policy"])
    results["end"] = evaluate(final_policy, jax.random.fold_in(rng, 3))
    run_dir.write_json(workdir, EVAL_END_FILE, results["end"])
    return results, final_policy


def update_mask(rl, rollout, truncated: np.ndarray) -> tuple[np.ndarray, int]:
    """The response mask the update trains on, and how many groups it dropped.

    `rl.drop_equal_groups` (DAPO's dynamic sampling, GRPO/RLOO): every response of a group whose rewards are all
    equal is masked out (no refill: the update has fewer sequences). `rl.overlong_filter` (DAPO): responses cut at
    `max_new_tokens` without a stop token are masked out. [n, R] bool, int.
    """
    mask = rollout.response_mask.copy()
    dropped = 0
    if rl.algorithm in GROUP_ALGORITHMS and rl.drop_equal_groups:
        equal = np.asarray(grpo.zero_variance_groups(rollout.scores, rl.samples_per_prompt))
        dropped = int(equal.sum())
        mask &= ~np.repeat(equal, rl.samples_per_prompt)[:, None]
    if rl.overlong_filter:
        mask &= ~truncated[:, None]
    return mask, dropped


def _explained_variance(rl, values, returns, mask) -> float:
    """How much of the returns' variance the value model explains, over the tokens its targets cover."""
    values, returns, mask = jnp.asarray(values), jnp.asarray(returns), jnp.asarray(mask)
    if rl.algorithm == "reinforce":
        if rl.baseline == "prompt":
            values = jnp.broadcast_to(values[:, :1], values.shape)
        returns = jnp.broadcast_to(returns[:, None], values.shape)
    return float(ppo.explained_variance(values, returns, mask))


def health_warnings(metrics: dict, previous_length: float | None, step: int) -> None:
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
