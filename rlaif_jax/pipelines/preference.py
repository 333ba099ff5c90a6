"""The `preference` job: offline preference optimisation from a frozen start policy (= the reference).

Methods (`config.loss.method`): 'dpo' (DPO, IPO, hinge and cDPO through `loss_type` / `label_smoothing`; Rafailov
et al. 2023), 'slic' (SLiC-HF, Zhao et al. 2023), 'rrhf' (Yuan et al. 2023) and 'rso' (Liu et al. 2023).
Data (`config.data.source`): 'jsonl' (pairwise prompt/chosen/rejected, or ranked rows for RRHF), 'toy' (toy pairs)
or 'sampled': K responses per train prompt from the start policy, scored by `config.data.label_reward` and kept in
WORKDIR/samples.jsonl, then paired (`config.data.pairing`), grouped (RRHF) or rejection-sampled and paired (RSO).
The reference log-probs of every row are computed once and cached in WORKDIR/reference_logps.npz. Training runs
through `train.loop.fit` (checkpoints, resume); held-out gold reward and KL to the reference are measured before
and after (WORKDIR/eval_start.json, eval_end.json). Re-running the same command resumes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os

import jax
import numpy as np

from rlaif_jax import distributed, sampling, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import preferences, sampled_pairs
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.evaluation import policy as policy_eval
from rlaif_jax.losses import dpo, rrhf, rso, slic
from rlaif_jax.losses.logprobs import sequence_logprobs
from rlaif_jax.models.setup import build_mesh
from rlaif_jax.pipelines.model_setup import initial_policy
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import model_params

METHODS = ("dpo", "slic", "rrhf", "rso")
SOURCES = ("sampled", "jsonl", "toy")
CALIBRATION_TARGETS = ("best", "sft")
SAMPLES_FILE = "samples.jsonl"
REFERENCE_FILE = "reference_logps.npz"


def check_config(config) -> None:
    """Raises ValueError naming the field when `config.loss` / `config.data` name an unknown method, source or
    pairing (before any model is loaded)."""
    loss, data = config.loss, config.data
    if loss.method not in METHODS:
        raise ValueError(f"config.loss.method={loss.method!r}; expected one of {METHODS}")
    if data.source not in SOURCES:
        raise ValueError(f"config.data.source={data.source!r}; expected one of {SOURCES}")
    pairings = rso.PAIRING_METHODS if loss.method == "rso" else sampled_pairs.PAIRINGS
    if data.source == "sampled" and loss.method != "rrhf" and data.pairing not in pairings:
        raise ValueError(f"config.data.pairing={data.pairing!r} for method {loss.method!r}; expected one of {pairings}")
    if data.labels not in preferences.LABELS:
        raise ValueError(f"config.data.labels={data.labels!r}; expected one of {preferences.LABELS}")
    soft_ok = loss.method == "dpo" and loss.loss_type == "sigmoid" and not loss.label_smoothing
    if data.labels == "soft" and not soft_ok:
        raise ValueError(
            "config.data.labels='soft' needs config.loss.method='dpo' with loss_type='sigmoid' and label_smoothing=0"
            f" (got {loss.method!r}, {loss.get('loss_type')!r}, {loss.get('label_smoothing')!r})"
        )
    if loss.method == "slic" and loss.calibration_target not in CALIBRATION_TARGETS:
        raise ValueError(f"config.loss.calibration_target={loss.calibration_target!r}; expected {CALIBRATION_TARGETS}")


def make_loss_fn(module, loss_config, *, soft_labels: bool = False):
    """The train-step loss of `loss_config.method` with its parameters from `config.loss`; `soft_labels` (DPO):
    each pair's 'preference' is its label (`config.data.labels='soft'`)."""
    if loss_config.method == "dpo":
        return dpo.dpo_loss_fn(
            module,
            beta=loss_config.beta,
            loss_type=loss_config.loss_type,
            label_smoothing=loss_config.label_smoothing,
            soft_labels=soft_labels,
        )
    if loss_config.method == "slic":
        return slic.slic_loss_fn(
            module, margin=loss_config.margin, regularization_weight=loss_config.regularization_weight
        )
    if loss_config.method == "rrhf":
        return rrhf.rrhf_loss_fn(module, sft_weight=loss_config.sft_weight, rank_weight=loss_config.rank_weight)
    return rso.rso_loss_fn(module, gamma=loss_config.gamma, loss_type=loss_config.rso_loss_type)


def sample_responses(policy, prompts, prompt_ids, reward_fn, data_config, rng) -> tuple[list[str], np.ndarray]:
    """`data.samples_per_prompt` sampled responses of each prompt (prompt-major) and their rewards `[P * K]`,
    `data.sample_batch_prompts` prompts per sampler call (step i draws with fold_in(rng, i))."""
    texts, rewards = [], []
    per_call = data_config.sample_batch_prompts
    for call, start in enumerate(range(0, len(prompts), per_call)):
        generated = sampling.generate(
            policy,
            prompt_ids[start : start + per_call],
            max_new_tokens=data_config.max_new_tokens,
            rng=jax.random.fold_in(rng, call),
            temperature=data_config.temperature,
            top_k=data_config.top_k,
            num_samples=data_config.samples_per_prompt,
        )
        repeated = [p for p in prompts[start : start + per_call] for _ in range(data_config.samples_per_prompt)]
        scores = np.asarray(reward_fn(repeated, generated.texts), np.float32)
        if scores.shape != (len(repeated),):
            raise ValueError(
                f"reward {data_config.label_reward!r} gave shape {scores.shape} for {len(repeated)} samples"
            )
        rewards.append(scores)
        texts.extend(generated.texts)
    rewards = np.concatenate(rewards)
    if not np.all(np.isfinite(rewards)):
        bad = np.flatnonzero(~np.isfinite(rewards))[:5] // data_config.samples_per_prompt
        raise ValueError(f"reward {data_config.label_reward!r} is not finite for samples of prompts {bad.tolist()}")
    return texts, rewards


def load_samples(config, workdir: str, policy, seed_rng) -> list[dict]:
    """WORKDIR/samples.jsonl, written on the first run (sampled from the start policy) and reused afterwards."""
    data = config.data
    prompts = prompt_data.load_prompts(data.task, "train", config.seed, data.num_prompts)
    path = os.path.join(workdir, SAMPLES_FILE)
    if run_dir.exists(path):
        rows = sampled_pairs.read_samples(path, num_prompts=len(prompts), samples_per_prompt=data.samples_per_prompt)
        for row, prompt in zip(rows, prompts):
            if row["prompt"] != prompt:
                raise ValueError(f"{row['_source']}: prompt {row['prompt']!r} is not this run's {prompt!r}")
        logging.info("reusing %d prompts x %d samples from %s", len(rows), data.samples_per_prompt, path)
        return rows
    prompt_ids = prompt_data.encode_prompts(
        policy.tokenizer,
        prompts,
        use_chat_template=data.use_chat_template,
        max_prompt_length=data.max_prompt_length,
        source=data.task,
    )
    reward_fn = make_reward_fn(data.label_reward, max_length=data.max_length, use_chat_template=data.use_chat_template)
    texts, rewards = sample_responses(policy, prompts, prompt_ids, reward_fn, data, seed_rng)
    return sampled_pairs.write_samples(path, prompts, texts, rewards)


def sampled_rows(config, samples: list[dict]) -> list[dict]:
    """Rows for `config.loss.method` from scored samples: ranked groups (RRHF), RSO's rejection-sampled pairs
    (RSO Algorithm 1 with β = config.loss.rso_beta, then first-round / tournament pairs), or pairs by
    `config.data.pairing`."""
    data, loss = config.data, config.loss
    if loss.method == "rrhf":
        return sampled_pairs.ranked_rows(samples)
    pairs = []
    for index, sample in enumerate(samples):
        rewards = np.asarray(sample["rewards"], np.float64)
        if loss.method == "rso":
            rng = np.random.default_rng([config.seed, index])
            # The paper keys candidates by text: a decode drawn twice is one candidate (its first index).
            first_index = {text: i for i, text in reversed(list(enumerate(sample["responses"])))}
            distinct = np.array(sorted(first_index.values()))
            kept = distinct[
                rso.statistical_rejection_sample(
                    rewards[distinct], num_samples=loss.rso_num_samples, beta=loss.rso_beta, rng=rng
                )
            ]
            pairs.append(rso.make_pairs(rng.permutation(kept), rewards, method=data.pairing))
        else:
            pairs.append(sampled_pairs.pair_indices(rewards, data.pairing))
    return sampled_pairs.pairwise_rows(samples, pairs)


def load_rows(config, workdir: str, policy, rng) -> list[dict]:
    """Pairwise rows (ranked rows for RRHF) of `config.data.source`; with `config.data.labels='hard'` each pair is
    oriented by its 'preference' column (`preferences.hard_label_rows`)."""
    rows = _source_rows(config, workdir, policy, rng)
    if config.loss.method == "rrhf" or config.data.labels != "hard":
        return rows
    oriented, dropped = preferences.hard_label_rows(rows)
    swapped = sum(row.get("preference", 1.0) < 0.5 for row in rows)
    logging.info("hard labels: %d of %d pairs swapped, %d at preference 0.5 dropped", swapped, len(rows), dropped)
    if not oriented:
        raise ValueError(f"config.data ({config.data.source}): every pair has preference 0.5, so no hard label")
    return oriented


def _source_rows(config, workdir: str, policy, rng) -> list[dict]:
    data, ranked = config.data, config.loss.method == "rrhf"
    if data.source == "toy":
        if ranked:
            return preferences.toy_ranked_rows(
                data.toy_num_pairs, seed=data.seed, noise=data.toy_noise, num_responses=data.samples_per_prompt
            )
        return preferences.toy_pairwise_rows(data.toy_num_pairs, seed=data.seed, noise=data.toy_noise)
    if data.source == "jsonl":
        if not data.train_file:
            raise ValueError("config.data.train_file is not set (source 'jsonl')")
        if ranked:
            return preferences.read_ranked_jsonl(data.train_file)
        return preferences.read_pairwise_jsonl(data.train_file, require_preference=data.labels == "soft")
    rows = sampled_rows(config, load_samples(config, workdir, policy, rng))
    if not rows:
        raise ValueError(f"no preference pairs: every prompt's {data.samples_per_prompt} samples tied in reward")
    return rows


def training_arrays(config, rows: list[dict], tokenizer) -> dict[str, np.ndarray]:
    """The method's batch arrays (see the loss adapters), reference log-probs not yet included."""
    data, loss = config.data, config.loss
    kwargs = dict(max_length=data.max_length, use_chat_template=data.use_chat_template)
    if loss.method == "rrhf":
        examples = preferences.tokenize_rankings(rows, tokenizer, **kwargs)
        return {k: examples.arrays[k] for k in ("tokens", "attention_mask", "loss_mask", "rewards", "valid")}
    with_target = loss.method == "slic"
    if with_target and loss.calibration_target == "best":
        rows = [{**row, "target": row.get("best_response", row["chosen"])} for row in rows]
    examples = preferences.tokenize_pairs(rows, tokenizer, with_target=with_target, **kwargs)
    sides = ("chosen", "rejected", "target") if with_target else ("chosen", "rejected")
    arrays = {f"{s}_{k}": examples.arrays[f"{s}_{k}"] for s in sides for k in ("tokens", "attention_mask", "loss_mask")}
    if data.labels == "soft":
        arrays["preference"] = examples.arrays["preference"]
    return arrays


def reference_logprobs(module, params, arrays, *, batch_size: int, mesh, rules) -> dict[str, np.ndarray]:
    """Summed log π_ref of every chosen and rejected row: {'reference_chosen_logps', 'reference_rejected_logps'},
    float32 `[n]`, `batch_size` rows per jitted call (the last batch padded with copies of row 0)."""
    logps_fn = jax.jit(lambda p, t, a, m: sequence_logprobs(module, p, t, a, m)[0])
    results = {}
    for side in ("chosen", "rejected"):
        tokens, attention_mask, loss_mask = (arrays[f"{side}_{k}"] for k in ("tokens", "attention_mask", "loss_mask"))
        values = []
        for start in range(0, len(tokens), batch_size):
            rows = np.arange(start, start + batch_size)
            rows = np.where(rows < len(tokens), rows, 0)
            batch = sharding.place_batch((tokens[rows], attention_mask[rows], loss_mask[rows]), mesh, rules)
            with sharding.activate(mesh, rules):
                values.append(distributed.to_host(logps_fn(params, *batch)))
        results[f"reference_{side}_logps"] = np.concatenate(values)[: len(tokens)].astype(np.float32)
    return results


def _fingerprint(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def cached_reference_logprobs(path: str, arrays: dict[str, np.ndarray], compute) -> dict[str, np.ndarray]:
    """`compute()` once, saved to `path` with a hash of the token arrays; later runs load it. A file for another
    number of rows or other tokens raises ValueError naming it."""
    fingerprint = _fingerprint({k: v for k, v in arrays.items() if k.endswith(("tokens", "loss_mask"))})
    num_rows = len(arrays["chosen_tokens"])
    if run_dir.exists(path):
        with np.load(io.BytesIO(run_dir.path(path).read_bytes())) as cached:
            found = len(cached["reference_chosen_logps"])
            if found != num_rows:
                raise ValueError(f"{path}: reference log-probs of {found} rows, but the data has {num_rows}; delete it")
            if str(cached["fingerprint"]) != fingerprint:
                raise ValueError(f"{path}: computed for other token arrays than this run's data; delete it")
            return {k: cached[k] for k in ("reference_chosen_logps", "reference_rejected_logps")}
    values = compute()
    run_dir.write_atomic(path, lambda f: np.savez(f, fingerprint=np.asarray(fingerprint), **values))
    return values


def run(config, workdir: str) -> dict:
    """Trains the policy on preferences; returns {'start', 'end': held-out evaluations, 'train': last metrics,
    'num_examples'} ('end' only once the run reached its last step)."""
    check_config(config)
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    policy = initial_policy(config, workdir, mesh, rules)
    reference_params = policy.params  # frozen; `fit` trains a copy
    rng = jax.random.key(config.seed)
    data, loss = config.data, config.loss

    rows = load_rows(config, workdir, policy, jax.random.fold_in(rng, 1))
    arrays = training_arrays(config, rows, policy.tokenizer)
    if loss.method in ("dpo", "rso"):
        arrays.update(
            cached_reference_logprobs(
                os.path.join(workdir, REFERENCE_FILE),
                arrays,
                lambda: reference_logprobs(
                    policy.module,
                    reference_params,
                    arrays,
                    batch_size=config.train.reference_batch_size,
                    mesh=mesh,
                    rules=rules,
                ),
            )
        )
    num_examples = len(next(iter(arrays.values())))
    logging.info("preference data: %d %s examples from %s", num_examples, loss.method, data.source)

    eval_config = config.eval
    eval_prompts = prompt_data.load_prompts(data.task, "held_out", config.seed, eval_config.num_prompts)
    eval_ids = prompt_data.encode_prompts(
        policy.tokenizer,
        eval_prompts,
        use_chat_template=data.use_chat_template,
        max_prompt_length=data.max_prompt_length,
        source=data.task,
    )
    gold_fn = make_gold_reward(eval_config.gold_reward)
    kl_fn = policy_eval.make_kl_fn(policy.module, data.max_prompt_length)

    def evaluate(params, eval_rng):
        return policy_eval.evaluate_policy(
            policy.replace(params=params),
            reference_params,
            eval_prompts,
            eval_ids,
            gold_fn,
            max_new_tokens=data.max_new_tokens,
            temperature=eval_config.temperature,
            prompt_length=data.max_prompt_length,
            kl_fn=kl_fn,
            rng=eval_rng,
        )

    results = {"num_examples": num_examples}
    start_path = os.path.join(workdir, "eval_start.json")
    results["start"] = run_dir.cached_json(start_path, lambda: evaluate(reference_params, jax.random.fold_in(rng, 2)))

    train = config.train
    num_steps = train.num_steps or train.num_epochs * max(num_examples // train.batch_size, 1)
    state, results["train"], finished = fit(
        lm=policy,
        loss_fn=make_loss_fn(policy.module, loss, soft_labels=data.labels == "soft"),
        arrays=arrays,
        config=config,
        workdir=workdir,
        num_steps=num_steps,
        mesh=mesh,
        rules=rules,
        desc=loss.method,
    )
    if not finished:
        return results  # stopped early: the end-of-run evaluation waits for the resumed run
    results["end"] = evaluate(model_params(state), jax.random.fold_in(rng, 3))
    run_dir.write_json(workdir, "eval_end.json", results["end"])
    logging.info(
        "%s: held-out %s %.3f -> %.3f, KL %.3f",
        loss.method,
        eval_config.gold_reward,
        results["start"]["gold_reward"],
        results["end"]["gold_reward"],
        results["end"]["kl"],
    )
    return results
