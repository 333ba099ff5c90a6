"""The `conditional` job: conditional training on control prefixes (Korbak et al. 2023's `<|good|>` / `<|bad|>`).

1. Sample `samples_per_prompt` responses per train prompt from the start (SFT) policy and score them with `reward`
   -> WORKDIR/data.jsonl (every sample with its reward and tag; reused as it is when a re-run finds the file).
2. Tag by reward quantile over the whole pool: the top `good_fraction` get the good prefix, the bottom
   `bad_fraction` the bad one; the middle is left out.
3. SFT (`losses.sft.sft_loss_fn` through `train.loop.fit`, checkpoints in WORKDIR/checkpoints) on every tagged sample,
   its prompt text prefixed by its control string.
4. Sample the held-out prompts with the good prefix (and, as a check that the control works, the bad one) and judge
   them with `gold_reward`; the KL is log π(y | prefix, x) - log π_start(y | x), the start policy reading the prompt
   without the prefix it never saw. -> eval_start.json, eval_good.json, eval_bad.json, conditional.json / .md.

The control "tokens" are plain text, not new vocabulary ids: plain text works with every tokenizer and checkpoint
unchanged (no embedding resize, tied or vocab-sharded embeddings and the HF export stay as they are), and the model
already has embeddings for its pieces. The price is a few tokens per prompt instead of one.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from rlaif_jax import models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import write_jsonl
from rlaif_jax.data.sft import tokenize_prompt_response
from rlaif_jax.evaluation import policy as policy_eval
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.models.setup import build_mesh
from rlaif_jax.pipelines.best_of_n import markdown_table
from rlaif_jax.pipelines.expert_iteration import read_scored_rows
from rlaif_jax.pipelines.model_setup import initial_policy
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.train import rollout as rollouts
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import model_params

DATA_FILE = "data.jsonl"
TAGS = ("good", "bad", "")  # "" = between the quantiles: kept in data.jsonl, not trained on


def tag_by_quantile(rewards: np.ndarray, *, good_fraction: float, bad_fraction: float) -> np.ndarray:
    """Control tags of samples by reward quantile over the whole pool.

    rewards: [n]. A sample is 'good' if its reward is at least the (1 - good_fraction) quantile, else 'bad' if at most
    the bad_fraction quantile, else '' (numpy's linear-interpolation quantiles; ties at a threshold share its tag).
    Returns a `[n]` array of 'good' / 'bad' / ''. Raises if either tag would be empty (no spread in the rewards).
    """
    rewards = np.asarray(rewards, np.float64)
    if rewards.ndim != 1 or rewards.size == 0 or not np.isfinite(rewards).all():
        raise ValueError(f"rewards must be a non-empty finite [n] array; got shape {rewards.shape}")
    if not (0 < good_fraction < 1 and 0 < bad_fraction < 1 and good_fraction + bad_fraction <= 1):
        raise ValueError(
            f"need 0 < good_fraction, bad_fraction and their sum <= 1; got {good_fraction}, {bad_fraction}"
        )
    good = rewards >= np.quantile(rewards, 1 - good_fraction)
    bad = (rewards <= np.quantile(rewards, bad_fraction)) & ~good
    if not good.any() or not bad.any():
        raise ValueError(
            f"rewards of the {rewards.size} samples have no spread (min {rewards.min():.4g}, max {rewards.max():.4g}): "
            "the good and bad quantiles coincide"
        )
    return np.where(good, "good", np.where(bad, "bad", ""))


def tagged_rows(rows: list[dict], prefixes: dict[str, str]) -> list[dict]:
    """SFT rows {'prompt': prefix + prompt, 'response'} of the rows tagged 'good' or 'bad' (the untagged are left
    out); an unknown tag raises naming the row's source."""
    out = []
    for row in rows:
        tag = row.get("tag")
        if tag not in TAGS:
            raise ValueError(f"{row.get('_source', 'row')}: tag {tag!r} is not one of {TAGS}")
        if tag:
            out.append({"prompt": prefixes[tag] + row["prompt"], "response": row["response"]})
    return out


def make_conditional_kl_fn(module, prompt_length: int, reference_tokens: np.ndarray, reference_mask: np.ndarray):
    """A `kl_fn` for `policy_eval.evaluate_policy` when the policy reads a control prefix the reference does not:
    per-token log π(y | prefix, x) - log π_ref(y | x), `[prompts, R]`.

    reference_tokens, reference_mask: [prompts, P], the prompts without the prefix, left-padded to P (row i is the
    evaluation's prompt i; evaluate_policy draws one sample per prompt in order).
    """

    def log_ratio(params, reference_params, tokens, attention_mask, ref_tokens, ref_mask):
        logprobs = rollouts.response_logprobs(module, params, tokens, attention_mask, prompt_length)
        ref_logprobs = rollouts.response_logprobs(module, reference_params, ref_tokens, ref_mask, prompt_length)
        return logprobs - ref_logprobs

    jitted = jax.jit(log_ratio)

    def kl_fn(params, reference_params, tokens, attention_mask):
        tokens, attention_mask = np.array(tokens), np.array(attention_mask)
        if len(tokens) != len(reference_tokens):
            raise ValueError(f"{len(tokens)} sampled rows for {len(reference_tokens)} reference prompts")
        ref_tokens, ref_mask = tokens.copy(), attention_mask.copy()
        ref_tokens[:, :prompt_length] = reference_tokens
        ref_mask[:, :prompt_length] = reference_mask
        return jitted(params, reference_params, tokens, attention_mask, ref_tokens, ref_mask)

    return kl_fn


def left_pad(prompt_ids: list[list[int]], prompt_length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompts left-padded to `prompt_length` as in a rollout: (tokens int32 [prompts, P], mask bool [prompts, P])."""
    tokens = np.full((len(prompt_ids), prompt_length), pad_id, np.int32)
    mask = np.zeros(tokens.shape, bool)
    for row, ids in enumerate(prompt_ids):
        tokens[row, prompt_length - len(ids) :] = ids
        mask[row, prompt_length - len(ids) :] = True
    return tokens, mask


def run(config, workdir: str) -> dict:
    """Samples, tags, trains on control prefixes and evaluates with them; returns {'start', 'good', 'bad'} evals."""
    cond = config.conditional
    prefixes = {"good": cond.good_prefix, "bad": cond.bad_prefix}
    if not cond.good_prefix or not cond.bad_prefix or cond.good_prefix == cond.bad_prefix:
        raise ValueError(f"config.conditional needs two different non-empty prefixes; got {prefixes}")
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    policy = initial_policy(config, workdir, mesh, rules)
    reference_params = policy.params  # the start policy: sampled for data, the KL reference, never trained
    prompt_length = cond.max_prompt_length

    def encode(texts, source):
        return prompt_data.encode_prompts(
            policy.tokenizer,
            texts,
            use_chat_template=cond.use_chat_template,
            max_prompt_length=prompt_length,
            source=source,
        )

    rng = jax.random.key(config.seed)
    gold_fn = make_gold_reward(cond.gold_reward)
    eval_prompts = prompt_data.load_prompts(cond.task, "held_out", config.seed, cond.eval_prompts)
    eval_ids = encode(eval_prompts, f"{cond.task} (held_out)")

    def evaluate(current, ids, kl_fn):
        return policy_eval.evaluate_policy(
            current,
            reference_params,
            eval_prompts,  # the gold judge reads the prompt without the prefix
            ids,
            gold_fn,
            max_new_tokens=cond.max_new_tokens,
            temperature=cond.eval_temperature,
            prompt_length=prompt_length,
            kl_fn=kl_fn,
            rng=jax.random.fold_in(rng, 2),
        )

    results = {
        "start": run_dir.cached_json(
            os.path.join(workdir, "eval_start.json"),
            lambda: evaluate(policy, eval_ids, policy_eval.make_kl_fn(policy.module, prompt_length)),
        )
    }
    data_path = os.path.join(workdir, DATA_FILE)
    if not run_dir.exists(data_path):
        train_prompts = prompt_data.load_prompts(cond.task, "train", config.seed)
        train_prompts = train_prompts[: cond.train_prompts] if cond.train_prompts > 0 else train_prompts
        reward_fn = make_reward_fn(
            cond.reward, max_length=prompt_length + cond.max_new_tokens + 1, use_chat_template=cond.use_chat_template
        )
        rollout = rollouts.sample_rollout(
            policy,
            train_prompts,
            encode(train_prompts, f"{cond.task} (train)"),
            reward_fn,
            rng=jax.random.fold_in(rng, 1),
            max_new_tokens=cond.max_new_tokens,
            temperature=cond.temperature,
            num_samples=cond.samples_per_prompt,
            prompt_length=prompt_length,
        )
        tags = tag_by_quantile(rollout.scores, good_fraction=cond.good_fraction, bad_fraction=cond.bad_fraction)
        write_jsonl(
            [
                {"prompt": prompt, "response": completion, "reward": float(reward), "tag": str(tag)}
                for prompt, completion, reward, tag in zip(rollout.prompts, rollout.completions, rollout.scores, tags)
            ],
            data_path,
        )
    data = read_scored_rows(data_path)
    examples = tokenize_prompt_response(
        tagged_rows(data, prefixes),
        policy.tokenizer,
        max_length=prompt_length + cond.max_new_tokens + 1,
        use_chat_template=cond.use_chat_template,
    )
    state, _, finished = fit(
        lm=policy,
        loss_fn=sft_loss_fn(policy.module),
        arrays=examples.arrays,
        config=config,
        workdir=workdir,
        num_steps=cond.steps,
        mesh=mesh,
        rules=rules,
        desc="conditional",
    )
    if not finished:
        return results  # stopped early (config.train.stop_at_step): a re-run continues from the checkpoint
    trained = policy.replace(params=model_params(state))
    pad_id = policy.config.pad_token_id if policy.config.pad_token_id is not None else 0
    plain_tokens, plain_mask = left_pad(eval_ids, prompt_length, pad_id)
    kl_fn = make_conditional_kl_fn(policy.module, prompt_length, plain_tokens, plain_mask)
    for tag, prefix in prefixes.items():
        ids = encode([prefix + text for text in eval_prompts], f"{cond.task} (held_out, {tag} prefix)")
        results[tag] = run_dir.cached_json(
            os.path.join(workdir, f"eval_{tag}.json"), lambda ids=ids: evaluate(trained, ids, kl_fn)
        )
    tag_rewards = {tag: [row["reward"] for row in data if row["tag"] == tag] for tag in ("good", "bad")}
    results["data"] = {f"{tag}_reward": float(np.mean(values)) for tag, values in tag_rewards.items()}
    results["data"].update({f"num_{tag}": len(values) for tag, values in tag_rewards.items()}, num_samples=len(data))
    run_dir.write_json(workdir, "conditional.json", results)
    rows = [
        {"policy": "start (no prefix)", **results["start"]},
        {"policy": f"conditional, {cond.good_prefix.strip()}", **results["good"]},
        {"policy": f"conditional, {cond.bad_prefix.strip()}", **results["bad"]},
    ]
    table = markdown_table(
        rows,
        [
            ("policy", "policy", "s"),
            ("gold_reward", f"held-out gold ({cond.gold_reward})", ".3f"),
            ("kl", "KL to start (nats)", ".3f"),
            ("response_length", "length (tokens)", ".1f"),
        ],
    )
    run_dir.write_text_atomic(
        os.path.join(workdir, "conditional.md"), f"Conditional training on {cond.task}: {results['data']}\n\n" + table
    )
    if config.export_hf:
        models.save_hf(trained, os.path.join(workdir, "hf_model"))
    return results
