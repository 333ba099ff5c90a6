"""The `rest` job: Reinforced Self-Training (Gulcehre et al. 2023, Alg. 1), `config.grow.num_steps` Grow steps of
`config.improve.num_steps` Improve steps each.

Grow g -> WORKDIR/grow_{g}.jsonl: `num_samples` samples per training source from the current policy at temperature
0.8, plus the original data D (kept in the mix, ReST §3), every row scored once by the reward and stored with its
normalised reward. A re-run reads the file back and never samples again.
Improve i -> WORKDIR/grow_{g}/improve_{i}: keep the rows whose normalised reward is > τ_i (τ rising through
`config.improve.thresholds`, τ_0 = 0: all of D_g), fine-tune with the BC loss (the SFT NLL, ReST's best loss,
Fig. 5) from the previous policy at learning rate `optimizer.learning_rate · lr_decay^k` (k = Improve steps trained
before it in this Grow step: "a lower learning rate" each step; the paper does not say whether it restarts per Grow
step), then evaluate on the validation set (the stopping rule) and the test set (the report). With
`improve.stop_when_no_gain` (Alg. 1: "while the reward improves on D_eval") the Improve loop of a Grow step stops at
the first step whose validation reward is not above the best so far, and the best policy is kept: the next Grow
samples from it. With `improve.threshold_above_mean` a step whose τ is at or below the mean normalised reward of D_g
is skipped (Alg. 1: τ_1 > V^{π_0} = E_{D_g}[R]), so a later Grow step does not first fall back to the mean of D_g.
WORKDIR/rest.json and rest.md hold the reward per (grow, improve) step, named as in ReST's Table 1: "BC (G=0, I=0)"
is the start, "ReST (G=g, I=i)" the policy after Improve step i (from 0) of Grow step g (from 1). With `sft_first`
the initial policy is BC on D (ReST's "G=0 I=0"), trained into WORKDIR/sft. Re-running the same command resumes:
Grow files and evaluations are read back, an interrupted Improve step continues from its checkpoint and a finished
one is restored from its last.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from rlaif_jax import sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data import translation
from rlaif_jax.data.jsonl import read_jsonl, write_jsonl
from rlaif_jax.data.sentiment import sentiment_prompts
from rlaif_jax.data.sft import tokenize_prompt_response, tokenize_source_target
from rlaif_jax.data.toy import toy_rows
from rlaif_jax.evaluation import policy as policy_eval
from rlaif_jax.losses.sft import supervised_loss_fn
from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.models.setup import build_mesh
from rlaif_jax.models.t5 import EncoderDecoder
from rlaif_jax.pipelines.model_setup import initial_policy
from rlaif_jax.rewards.gold import make_gold_reward
from rlaif_jax.rewards.translation import TranslationReward
from rlaif_jax.train import rollout as rollouts
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import model_params

TASKS = ("toy", "translation", "corpus", "sentiment")
NORMALIZATIONS = ("range", "minmax")
ORIGINAL = "original"  # origin of the rows of D in a Grow file (samples have origin 'grow_{g}')
GROW_FIELDS = ("source", "output", "reward", "normalized_reward", "origin")
CORPUS_LOADERS = {"iwslt2017": translation.load_iwslt2017, "wmt": translation.load_wmt}


@dataclasses.dataclass
class TaskData:
    """Prompt texts of the Grow sources, the validation and the test set; D as {'prompt', 'response'} rows (may be
    empty); the reward `fn(prompts, completions) -> [n]`."""

    train_prompts: list[str]
    valid_prompts: list[str]
    test_prompts: list[str]
    original_rows: list[dict]
    reward_fn: Callable


def _corpus_task(data_config, metric: str) -> TaskData:
    """A published corpus (`data.corpus_loader` of `data.corpus`) with sources wrapped in `data.prompt_template`."""
    if data_config.corpus_loader not in CORPUS_LOADERS:
        raise ValueError(f"data.corpus_loader={data_config.corpus_loader!r}; expected one of {sorted(CORPUS_LOADERS)}")
    load = CORPUS_LOADERS[data_config.corpus_loader]
    splits, references = {}, {}
    for name, split in (
        ("train", data_config.train_split),
        ("valid", data_config.valid_split),
        ("test", data_config.test_split),
    ):
        pairs = load(
            data_config.corpus, split, source_lang=data_config.source_lang, target_lang=data_config.target_lang
        )
        rows = [
            {"prompt": data_config.prompt_template.format(source=pair["source"]), "response": pair["target"]}
            for pair in pairs
        ]
        for row in rows:
            references.setdefault(row["prompt"], []).append(row["response"])
        splits[name] = rows
    return TaskData(
        train_prompts=list(dict.fromkeys(row["prompt"] for row in splits["train"])),
        valid_prompts=[row["prompt"] for row in splits["valid"]],
        test_prompts=[row["prompt"] for row in splits["test"]],
        original_rows=splits["train"][: data_config.num_original],
        reward_fn=TranslationReward(references, metric=metric),
    )


def task_data(config) -> TaskData:
    """The sources, evaluation prompts, original data and reward of `config.task`:
    'toy' (letters; D = noisy demonstrations), 'translation' (the synthetic language of data/translation.py; D = a
    noisy parallel corpus; chrF / BLEU against the correct translation), 'corpus' (IWSLT / WMT in the HF
    `translation` schema; chrF / BLEU against the references) or 'sentiment' (SmolLM2 movie reviews, VADER; no D).
    `data.num_sources` (0 = all) caps the Grow sources, `data.num_eval` the validation and test prompts."""
    task, data = config.task, config.data
    if task == "toy":
        valid = [row["prompt"] for row in toy_rows(data.num_eval, seed=config.seed + 20_000)]
        result = TaskData(
            train_prompts=prompt_data.load_prompts("toy", "train", config.seed),
            valid_prompts=valid,
            test_prompts=prompt_data.load_prompts("toy", "held_out", config.seed),
            original_rows=toy_rows(data.num_original, seed=data.seed, noise=data.noise),
            reward_fn=make_gold_reward("toy"),
        )
    elif task == "translation":
        references = {}
        for split in translation.SPLITS:
            references.update(translation.references_by_prompt(split))
        original = translation.translation_rows("train", data.num_original, seed=data.seed, noise=data.noise)
        result = TaskData(
            train_prompts=[translation.translation_prompt(s) for s in translation.split_sources("train")],
            valid_prompts=[translation.translation_prompt(s) for s in translation.split_sources("valid")],
            test_prompts=[translation.translation_prompt(s) for s in translation.split_sources("test")],
            original_rows=[{"prompt": row["prompt"], "response": row["response"]} for row in original],
            reward_fn=TranslationReward(references, metric=config.reward.metric),
        )
    elif task == "corpus":
        result = _corpus_task(data, config.reward.metric)
    elif task == "sentiment":
        if data.num_original:
            raise ValueError("task 'sentiment' has no original data D: set config.data.num_original=0")
        held_out = sentiment_prompts("held_out")
        half = len(held_out) // 2  # prompts are grouped by title: the halves share no film
        result = TaskData(
            train_prompts=sentiment_prompts("train"),
            valid_prompts=held_out[:half],
            test_prompts=held_out[half:],
            original_rows=[],
            reward_fn=make_gold_reward("sentiment"),
        )
    else:
        raise ValueError(f"config.task={task!r}; expected one of {TASKS}")
    if data.num_sources:
        result.train_prompts = result.train_prompts[: data.num_sources]
    result.valid_prompts = result.valid_prompts[: data.num_eval]
    result.test_prompts = result.test_prompts[: data.num_eval]
    return result


def normalize_rewards(rewards: np.ndarray, *, normalization: str, low: float, high: float) -> np.ndarray:
    """Rewards `[n]` -> `[n]` in [0, 1], the scale of ReST's thresholds (§4: rewards normalised to [0, 1]).

    'range': (r - low) / (high - low), clipped to [0, 1], for a reward with known bounds: toy and chrF / BLEU
    (low=0, high=1, the identity), VADER (low=-1, high=1). 'minmax': (r - min) / (max - min) over these rewards
    (one Grow dataset), for an unbounded reward such as a reward model; all 0 when every reward is equal.
    """
    rewards = np.asarray(rewards, np.float64)
    if normalization == "range":
        if not high > low:
            raise ValueError(f"reward range needs high > low; got low={low}, high={high}")
        return np.clip((rewards - low) / (high - low), 0.0, 1.0)
    if normalization == "minmax":
        if rewards.size == 0:
            return rewards
        spread = rewards.max() - rewards.min()
        return (rewards - rewards.min()) / spread if spread > 0 else np.zeros_like(rewards)
    raise ValueError(f"unknown reward normalization {normalization!r}; expected one of {NORMALIZATIONS}")


def improve_filter(rows: Sequence[dict], threshold: float) -> list[dict]:
    """ReST's filter F(x, y; τ) = 1[R(x, y) > τ] (§3): the rows whose 'normalized_reward' is strictly above
    `threshold`, in their order. τ = 0 keeps all but the rows at the very bottom of the scale."""
    return [row for row in rows if row["normalized_reward"] > threshold]


def grow(
    policy: LanguageModel,
    sources: Sequence[str],
    source_ids: Sequence[Sequence[int]],
    *,
    num_samples: int,
    temperature: float,
    reward_fn: Callable,
    rng: jax.Array,
    max_new_tokens: int,
    prompt_length: int,
    sources_per_call: int,
    origin: str,
) -> list[dict]:
    """ReST's Grow step (§3): `num_samples` samples of each source from `policy` at `temperature`, scored by
    `reward_fn`. Sources go `sources_per_call` at a time, call c drawing from fold_in(rng, c).

    Returns `len(sources) * num_samples` rows {'source', 'output', 'reward', 'finished' (a stop token ended it),
    'origin'}, source-major.
    """
    stop_ids = np.asarray(policy.config.eos_token_ids)
    rows = []
    for call, start in enumerate(range(0, len(sources), sources_per_call)):
        rollout = rollouts.sample_rollout(
            policy,
            sources[start : start + sources_per_call],
            source_ids[start : start + sources_per_call],
            reward_fn,
            rng=jax.random.fold_in(rng, call),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            num_samples=num_samples,
            prompt_length=prompt_length,
        )
        lengths = rollout.response_lengths
        last_tokens = rollout.tokens[np.arange(len(lengths)), rollout.prompt_length + np.maximum(lengths, 1) - 1]
        finished = (lengths > 0) & np.isin(last_tokens, stop_ids)
        for prompt, completion, score, done in zip(rollout.prompts, rollout.completions, rollout.scores, finished):
            rows.append(
                {
                    "source": prompt,
                    "output": completion,
                    "reward": float(score),
                    "finished": bool(done),
                    "origin": origin,
                }
            )
    return rows


def score_original(original_rows: Sequence[dict], reward_fn: Callable) -> list[dict]:
    """The rows of D {'prompt', 'response'} scored by `reward_fn`, in the Grow-file layout (origin 'original')."""
    if not original_rows:
        return []
    prompts = [row["prompt"] for row in original_rows]
    responses = [row["response"] for row in original_rows]
    scores = np.asarray(reward_fn(prompts, responses), np.float32)
    return [
        {"source": prompt, "output": response, "reward": float(score), "finished": True, "origin": ORIGINAL}
        for prompt, response, score in zip(prompts, responses, scores)
    ]


def grown_dataset(rows: Sequence[dict], *, normalization: str, low: float, high: float) -> list[dict]:
    """D_g: `rows` (samples and D) with 'normalized_reward' added (`normalize_rewards` over all of them)."""
    normalized = normalize_rewards(
        np.array([row["reward"] for row in rows]), normalization=normalization, low=low, high=high
    )
    return [{**row, "normalized_reward": float(value)} for row, value in zip(rows, normalized)]


def read_grow_file(path: str) -> list[dict]:
    """The rows of a Grow file; a row without the Grow fields, or with a non-numeric reward, raises naming
    `path:line`."""
    rows = []
    for row in read_jsonl(path):
        where = row.pop("_source")
        missing = [field for field in GROW_FIELDS if field not in row]
        if missing:
            raise ValueError(f"{where}: missing {missing} (has {sorted(row)})")
        for field in ("reward", "normalized_reward"):
            if not isinstance(row[field], (int, float)) or isinstance(row[field], bool):
                raise ValueError(f"{where}: {field!r} is not a number (got {row[field]!r})")
        rows.append(row)
    return rows


def threshold_for(thresholds: Sequence[float], improve_index: int) -> float:
    """τ of Improve step `improve_index` (0-based): the schedule's entry, its last one past its end."""
    return float(thresholds[min(improve_index, len(thresholds) - 1)])


def _sft_stage(config, original_rows: Sequence[dict], workdir: str):
    """With `config.sft_first`: `config` whose SFT stage trains on D, written to WORKDIR/original.jsonl, so the
    initial policy is ReST's BC on the original data."""
    if not config.sft_first:
        return config
    if not original_rows:
        raise ValueError(f"config.sft_first needs original data D; task {config.task!r} has none")
    path = os.path.join(workdir, "original.jsonl")
    if not run_dir.exists(path):
        write_jsonl([{"prompt": row["prompt"], "response": row["response"]} for row in original_rows], path)
    config = config.copy_and_resolve_references()
    config.sft.data.train_file = path
    config.sft.data.prompt_field, config.sft.data.response_field = "prompt", "response"
    config.sft.data.use_chat_template = config.data.use_chat_template
    return config


def _grow_summary(grow_index: int, rows: Sequence[dict]) -> dict:
    samples = [row["reward"] for row in rows if row["origin"] != ORIGINAL]
    original = [row["reward"] for row in rows if row["origin"] == ORIGINAL]
    return {
        "grow": grow_index + 1,
        "num_samples": len(samples),
        "sample_reward": float(np.mean(samples)) if samples else math.nan,
        "num_original": len(original),
        "original_reward": float(np.mean(original)) if original else math.nan,
    }


def markdown_table(results: dict) -> str:
    """The reward per (grow, improve) step as a Markdown table (ReST Table 1's rows: BC, then ReST (G=g, I=i))."""
    lines = [
        "| policy | τ | rows kept | learning rate | valid reward | test reward | test KL | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    start = results["start"]
    lines.append(
        f"| BC (G=0, I=0) | | | | {start['valid']['gold_reward']:.4f} | {start['test']['gold_reward']:.4f} "
        f"| {start['test']['kl']:.3f} | |"
    )
    for step in results["steps"]:
        name = f"ReST (G={step['grow']}, I={step['improve']})"
        if "skipped" in step:
            lines.append(f"| {name} | {step['threshold']} | | | | | | skipped: {step['skipped']} |")
            continue
        lines.append(
            f"| {name} | {step['threshold']} | {step['num_kept']} | {step['learning_rate']:.3g} "
            f"| {step['valid']['gold_reward']:.4f} | {step['test']['gold_reward']:.4f} | {step['test']['kl']:.3f} "
            f"| {'yes' if step['kept'] else 'no (stop)'} |"
        )
    lines += [
        "",
        "| grow | samples | mean sample reward | original rows | mean original reward |",
        "|---|---|---|---|---|",
    ]
    for row in results["grow"]:
        lines.append(
            f"| {row['grow']} | {row['num_samples']} | {row['sample_reward']:.4f} | {row['num_original']} "
            f"| {row['original_reward']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def run(config, workdir: str) -> dict:
    """Runs ReST; returns {'start': eval, 'grow': [summary per Grow step], 'steps': [row per Improve step],
    'finished': bool}, evals being {'valid': ..., 'test': ...} of `policy_eval.evaluate_policy`. Stops early
    (finished False) once `config.train.stop_at_step` optimizer steps, counted over all Improve steps, are done."""
    if config.task not in TASKS:
        raise ValueError(f"config.task={config.task!r}; expected one of {TASKS}")
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    data = task_data(config)
    policy = initial_policy(_sft_stage(config, data.original_rows, workdir), workdir, mesh, rules)
    reference_params = policy.params  # the start policy: the KL reference, never trained
    seq2seq = isinstance(policy.module, EncoderDecoder)  # a T5 policy: the source is its encoder's input
    prompt_length, max_new_tokens = config.data.max_prompt_length, config.data.max_new_tokens

    def encode(texts, split):
        return prompt_data.encode_prompts(
            policy.tokenizer,
            texts,
            use_chat_template=config.data.use_chat_template,
            max_prompt_length=prompt_length,
            source=f"{config.task} ({split})",
        )

    train_ids = encode(data.train_prompts, "train")
    eval_sets = {
        "valid": (data.valid_prompts, encode(data.valid_prompts, "valid")),
        "test": (data.test_prompts, encode(data.test_prompts, "test")),
    }
    kl_fn = policy_eval.make_kl_fn(policy.module, prompt_length)
    rng = jax.random.key(config.seed)

    def evaluate(params) -> dict:
        # The same draws at every evaluation of a split: step-to-step differences are less noisy.
        return {
            split: policy_eval.evaluate_policy(
                policy.replace(params=params),
                reference_params,
                prompts,
                ids,
                data.reward_fn,
                max_new_tokens=max_new_tokens,
                temperature=config.eval.temperature,
                prompt_length=prompt_length,
                kl_fn=kl_fn,
                rng=jax.random.fold_in(rng, index + 1),
            )
            for index, (split, (prompts, ids)) in enumerate(eval_sets.items())
        }

    results = {
        "start": run_dir.cached_json(os.path.join(workdir, "eval_start.json"), lambda: evaluate(policy.params)),
        "grow": [],
        "steps": [],
        "finished": False,
    }
    reward, improve, train = config.reward, config.improve, config.train
    params = policy.params  # what the next Grow samples from and the next Improve step starts from
    best_valid = results["start"]["valid"]["gold_reward"]
    improve_count = 0  # Improve steps trained so far: the stop_at_step clock
    for grow_index in range(config.grow.num_steps):
        if 0 < train.stop_at_step <= improve_count * improve.sgd_steps:
            return results
        path = os.path.join(workdir, f"grow_{grow_index}.jsonl")
        if not run_dir.exists(path):
            samples = grow(
                policy.replace(params=params),
                data.train_prompts,
                train_ids,
                num_samples=config.grow.num_samples,
                temperature=config.grow.temperature,
                reward_fn=data.reward_fn,
                rng=jax.random.fold_in(jax.random.fold_in(rng, 100), grow_index),
                max_new_tokens=max_new_tokens,
                prompt_length=prompt_length,
                sources_per_call=config.grow.sources_per_call,
                origin=f"grow_{grow_index}",
            )
            if grow_index:  # D was scored once, in Grow 0: reuse its scores
                original = [
                    {k: v for k, v in row.items() if k != "normalized_reward"}
                    for row in read_grow_file(os.path.join(workdir, "grow_0.jsonl"))
                    if row["origin"] == ORIGINAL
                ]
            else:
                original = score_original(data.original_rows, data.reward_fn)
            rows = grown_dataset(
                samples + original, normalization=reward.normalization, low=reward.low, high=reward.high
            )
            write_jsonl(rows, path)
        rows = read_grow_file(path)
        results["grow"].append(_grow_summary(grow_index, rows))
        mean_normalized = float(np.mean([row["normalized_reward"] for row in rows]))
        trained_in_grow = 0  # the learning-rate decay exponent
        for improve_index in range(improve.num_steps):
            steps_done = improve_count * improve.sgd_steps
            if 0 < train.stop_at_step <= steps_done:
                return results
            threshold = threshold_for(improve.thresholds, improve_index)
            step = {"grow": grow_index + 1, "improve": improve_index, "threshold": threshold}
            if improve.threshold_above_mean and threshold <= mean_normalized:
                results["steps"].append({**step, "skipped": f"τ <= mean normalised reward {mean_normalized:.4f}"})
                continue
            kept_rows = improve_filter(rows, threshold)
            if not kept_rows:
                logging.warning(
                    "grow %d improve %d: no rows above τ=%g; next Grow", grow_index, improve_index, threshold
                )
                results["steps"].append({**step, "skipped": "no rows above τ"})
                break
            if seq2seq:  # the source is the encoder's input, the output the decoder's target
                examples = tokenize_source_target(
                    kept_rows,
                    policy.tokenizer,
                    max_source_length=prompt_length,
                    max_target_length=max_new_tokens + 1,
                    use_chat_template=config.data.use_chat_template,
                    prompt_field="source",
                    response_field="output",
                )
            else:
                examples = tokenize_prompt_response(
                    kept_rows,
                    policy.tokenizer,
                    max_length=prompt_length + max_new_tokens + 1,
                    use_chat_template=config.data.use_chat_template,
                    prompt_field="source",
                    response_field="output",
                )
            step_config = config.copy_and_resolve_references()
            step_config.optimizer.learning_rate = config.optimizer.learning_rate * improve.lr_decay**trained_in_grow
            left = train.stop_at_step - steps_done
            step_config.train.stop_at_step = left if 0 < left < improve.sgd_steps else 0
            step_dir = os.path.join(workdir, f"grow_{grow_index}", f"improve_{improve_index}")
            state, _, finished = fit(
                lm=policy.replace(params=params),
                loss_fn=supervised_loss_fn(policy.module),
                arrays=examples.arrays,
                config=step_config,
                workdir=step_dir,
                num_steps=improve.sgd_steps,
                mesh=mesh,
                rules=rules,
                desc=f"rest grow {grow_index} improve {improve_index}",
            )
            improve_count += 1
            trained_in_grow += 1
            if not finished:
                return results  # stopped early: a re-run continues this Improve step from its checkpoint
            evaluation = run_dir.cached_json(
                os.path.join(step_dir, "eval.json"), lambda state=state: evaluate(model_params(state))
            )
            gained = evaluation["valid"]["gold_reward"] > best_valid
            step.update(
                num_kept=len(kept_rows),
                learning_rate=step_config.optimizer.learning_rate,
                kept=gained or not improve.stop_when_no_gain,
                **evaluation,
            )
            results["steps"].append(step)
            if step["kept"]:
                params = model_params(state)
                best_valid = max(best_valid, evaluation["valid"]["gold_reward"])
            else:
                break  # ReST's rule: stop improving on this Grow step, keep the best policy
    results["finished"] = True
    run_dir.write_json(workdir, "rest.json", results)
    run_dir.write_text_atomic(os.path.join(workdir, "rest.md"), markdown_table(results))
    return results
