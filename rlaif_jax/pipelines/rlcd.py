"""The `rlcd` job: RLCD (Yang et al. 2023) end to end, resumable stage by stage by re-running the same command.

  0. (`config.sft_first`, the tiny toy task) fine-tune the random-init model on demonstrations whose quality follows
     the toy affixes, standing in for a pretrained LM that understands them -> WORKDIR/sft/hf_model
  1. contrast pairs: for each prompt draw one affix pair (same-index rule), sample the policy on p+ and p-,
     post-process, keep pairs with both sides -> WORKDIR/pairs.jsonl {prompt, chosen, rejected, positive_prompt,
     negative_prompt, affix_index} (+ pairs_stats.json)
  1b. (`config.rlcd.rescore`, RLCD-Rescore) relabel them with the A/B scoring prompt -> WORKDIR/pairs_rescored.jsonl
  2. reward model: the `reward_model` job on those pairs -> WORKDIR/reward_model
  3. (with a gold judge) the RM's agreement with it on fresh held-out pairs -> WORKDIR/rm_gold_agreement.json
  4. PPO: the `online_rl` job with `rl.reward = reward_model:WORKDIR/reward_model` -> WORKDIR/ppo (eval_start/end.json)
A stage whose output exists is skipped. `config.model`, `config.mesh` and the task's prompt settings replace those
of the `reward_model` and `ppo` sub-configs; the effective sub-configs land in their run directories' config.json.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from rlaif_jax import sampling, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import read_jsonl, write_jsonl
from rlaif_jax.data.tokenize import encode_prompt
from rlaif_jax.data.toy import LETTERS, PROMPT_PREFIX, RESPONSE_LETTERS, toy_rows
from rlaif_jax.feedback import rlcd
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.rewards.gold import make_gold_reward

TASKS = prompt_data.TASKS
PROMPT_FORMATS = ("dialogue", "instruction")


def task_source(task_config, *, dialogue: bool):
    """The prompt source (data/prompts.py) of `config.task`: a local task, the hub / local TL;DR or HH data, or the
    `prompt_field` column of `train_file` / `eval_file` (JSONL); with `dialogue` each prompt is cut after its last
    `Assistant:`, so an hh-rlhf `chosen` column works too."""
    return prompt_data.source_config(
        task_config.name,
        train_file=task_config.train_file,
        eval_file=task_config.eval_file,
        eval_fraction=task_config.eval_fraction,
        field=task_config.prompt_field,
        data_dir=task_config.get("data_dir", ""),
        dialogue=task_config.name == "hh_rlhf" or (dialogue and task_config.name not in prompt_data.LOCAL_TASKS),
    )


def task_prompt_texts(task_config, split: str, seed: int, *, dialogue: bool) -> list[str]:
    """Prompts of `config.task` (`task_source`) for split 'train' or 'held_out'."""
    return prompt_data.load_prompts(task_source(task_config, dialogue=dialogue), split, seed)


def contrast_prompt_pair(prompt: str, affixes: rlcd.AffixSet, index: int, *, dialogue: bool) -> tuple[str, str]:
    """(p+, p-) of `prompt` with affix pair `index`: the dialogue rule or the single-turn rule (feedback/rlcd.py)."""
    build = rlcd.contrast_dialogue_prompts if dialogue else rlcd.contrast_instruction_prompts
    return build(prompt, affixes.positive[index], affixes.negative[index])


def sample_outputs(
    lm,
    prompt_ids: Sequence[Sequence[int]],
    postprocess,
    *,
    rng: jax.Array,
    max_new_tokens: int,
    temperature: float,
    batch_size: int,
    max_attempts: int,
    num_samples: int = 1,
) -> list[str | None]:
    """`num_samples` post-processed samples per prompt (prompt-major), `batch_size` sequences per `generate` call; a
    sample that post-processing rejects is drawn again, up to `max_attempts` draws in all (the authors retry 5
    times). Returns one text or None per (prompt, sample)."""
    rows = [(p, s) for p in range(len(prompt_ids)) for s in range(num_samples)]
    outputs: list[str | None] = [None] * len(rows)
    pending = list(range(len(rows)))
    for attempt in range(max_attempts):
        for batch_number, start in enumerate(range(0, len(pending), batch_size)):
            batch = pending[start : start + batch_size]
            generated = sampling.generate(
                lm,
                [prompt_ids[rows[r][0]] for r in batch],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                rng=jax.random.fold_in(jax.random.fold_in(rng, attempt), batch_number),
            )
            for r, text in zip(batch, generated.texts):
                outputs[r] = postprocess(text)
        pending = [r for r in pending if outputs[r] is None]
        if not pending:
            break
    return outputs


def contrast_pairs(lm, prompts: Sequence[str], config, *, seed: int, rng: jax.Array) -> tuple[list[dict], dict]:
    """RLCD rows (feedback.rlcd.pair_rows) for `prompts` and counts: prompts too long for
    `config.rlcd.max_prompt_length` (dropped), sides rejected by post-processing, pairs kept, seconds."""
    settings = config.rlcd
    dialogue = settings.prompt_format == "dialogue"
    affixes = rlcd.affix_set(settings.affixes)
    indices = rlcd.draw_affix_indices(len(prompts), len(affixes), seed)
    kept, sides, ids = [], [], []
    for prompt, index in zip(prompts, indices):
        pair = contrast_prompt_pair(prompt, affixes, int(index), dialogue=dialogue)
        encoded = [encode_prompt(lm.tokenizer, text, use_chat_template=config.task.use_chat_template) for text in pair]
        if max(map(len, encoded)) > settings.max_prompt_length:
            continue
        kept.append((prompt, int(index)))
        sides.append(pair)
        ids.extend(encoded)
    start = time.perf_counter()
    outputs = sample_outputs(
        lm,
        ids,
        rlcd.POSTPROCESSORS[settings.postprocess],
        rng=rng,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        batch_size=settings.batch_size,
        max_attempts=settings.max_attempts,
    )
    seconds = time.perf_counter() - start
    rows = rlcd.pair_rows(
        [prompt for prompt, _ in kept],
        [pair[0] for pair in sides],
        [pair[1] for pair in sides],
        outputs[0::2],
        outputs[1::2],
        [index for _, index in kept],
    )
    stats = {
        "num_prompts": len(prompts),
        "num_prompts_too_long": len(prompts) - len(kept),
        "num_sides_rejected": sum(output is None for output in outputs),
        "num_pairs": len(rows),
        "generate_seconds": seconds,
        "seconds_per_sample": seconds / max(len(ids), 1),
    }
    return rows, stats


def gold_agreement(rm_margins: np.ndarray, gold_margins: np.ndarray) -> dict:
    """Share of pairs where sign(RM chosen - rejected) equals sign(gold chosen - rejected); pairs the gold judge
    ties are dropped (an RM tie counts as a disagreement). Inputs `[n]`; agreement is None with no untied pair."""
    rm_margins, gold_margins = np.asarray(rm_margins, np.float64), np.asarray(gold_margins, np.float64)
    if rm_margins.shape != gold_margins.shape or rm_margins.ndim != 1:
        raise ValueError(f"margins of shapes {rm_margins.shape} and {gold_margins.shape}; expected equal [n]")
    untied = gold_margins != 0
    agree = np.sign(rm_margins[untied]) == np.sign(gold_margins[untied])
    return {
        "agreement": float(agree.mean()) if untied.any() else None,
        "num_pairs": int(untied.sum()),
        "num_gold_ties": int((~untied).sum()),
    }


def label_accuracy(gold_fn, rows: Sequence[dict]) -> dict:
    """How often the gold judge agrees with the pairs' labels (chosen over rejected), gold ties dropped."""
    prompts = [row["prompt"] for row in rows]
    chosen = gold_fn(prompts, [row["chosen"] for row in rows])
    rejected = gold_fn(prompts, [row["rejected"] for row in rows])
    result = gold_agreement(np.ones(len(rows)), np.asarray(chosen) - np.asarray(rejected))
    return {
        "label_accuracy": result["agreement"],
        "num_pairs": result["num_pairs"],
        "num_gold_ties": result["num_gold_ties"],
    }


def toy_affix_demonstrations(num_rows: int, *, seed: int, affixes: rlcd.AffixSet, noise: Sequence[float]) -> list[dict]:
    """Toy-task demonstrations for stage 0, a third each with no affix, a positive and a negative affix (pair drawn
    uniformly); each letter is wrong with probability noise[0], noise[1], noise[2] respectively. A negative
    (careless) demonstration either answers ANOTHER letter than the prompt's or stops after 1-5 letters (half
    each), so the contrast pairs differ in both ways the gold reward counts (right letters, and at least 6)."""
    rows = []
    for kind, kind_noise in enumerate(noise):
        part = toy_rows(num_rows // 3, seed=seed + 100 * kind, noise=kind_noise)
        draws = np.random.default_rng([seed, kind])
        for row in part:
            if kind == 2 and draws.random() < 0.5:
                others = [letter for letter in LETTERS if letter != row["prompt"][len(PROMPT_PREFIX) :]]
                row["prompt"] = PROMPT_PREFIX + others[draws.integers(len(others))]
            elif kind == 2:
                row["response"] = row["response"][: draws.integers(1, RESPONSE_LETTERS)]
            if kind:
                row["prompt"] += (
                    " " + (affixes.positive if kind == 1 else affixes.negative)[draws.integers(len(affixes))]
                )
            rows.append(row)
    return rows


def base_model_config(config, workdir: str) -> ml_collections.ConfigDict:
    """`config.model`, or with `config.sft_first` stage 0's result WORKDIR/sft/hf_model (trained if missing)."""
    model_config = config.model.copy_and_resolve_references()
    if not config.sft_first:
        return model_config
    sft_dir = os.path.join(workdir, "sft")
    if not os.path.exists(os.path.join(sft_dir, "hf_model", "config.json")):
        from rlaif_jax.pipelines import sft as sft_pipeline

        data_path = os.path.join(workdir, "sft_data.jsonl")
        rows = toy_affix_demonstrations(
            config.sft_data.num_rows,
            seed=config.seed,
            affixes=rlcd.affix_set(config.rlcd.affixes),
            noise=config.sft_data.noise,
        )
        write_jsonl(rows, data_path)
        sft_config = config.sft.copy_and_resolve_references()
        with sft_config.unlocked():
            sft_config.model = config.model.copy_and_resolve_references()
            sft_config.mesh = config.mesh.copy_and_resolve_references()
            sft_config.data.train_file = data_path
            sft_config.data.use_chat_template = config.task.use_chat_template
            sft_config.export_hf = True
        sft_pipeline.run(sft_config, sft_dir)
        if not os.path.exists(os.path.join(sft_dir, "hf_model", "config.json")):
            raise RuntimeError(f"stage 0 (SFT) stopped before its end: no {sft_dir}/hf_model; re-run to resume")
    with model_config.unlocked():
        model_config.name = os.path.join(sft_dir, "hf_model")
    return model_config


def _check(config) -> None:
    if config.task.name not in TASKS:
        raise ValueError(f"config.task.name={config.task.name!r}; expected one of {TASKS}")
    prompt_data.check_source(task_source(config.task, dialogue=False), "config.task")
    if config.rlcd.prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"config.rlcd.prompt_format={config.rlcd.prompt_format!r}; expected one of {PROMPT_FORMATS}")
    if config.rlcd.postprocess not in rlcd.POSTPROCESSORS:
        raise ValueError(f"config.rlcd.postprocess={config.rlcd.postprocess!r}; expected {sorted(rlcd.POSTPROCESSORS)}")
    rlcd.affix_set(config.rlcd.affixes)
    if config.rlcd.max_attempts < 1 or config.rlcd.batch_size < 1:
        raise ValueError(f"config.rlcd.max_attempts and batch_size must be >= 1; got {config.rlcd.to_dict()}")
    if config.agreement.gold_reward:
        make_gold_reward(config.agreement.gold_reward)


def _agreement_stage(config, workdir: str, policy, rm_dir: str, train_rows: Sequence[dict]) -> dict:
    """Stage 3: RM vs gold on fresh held-out pairs, RLCD contrast pairs and i.i.d. pairs (two samples of the plain
    prompt, the pairs PPO's RM actually compares), plus the gold accuracy of the training labels."""
    from rlaif_jax.rewards.reward_model import RewardModelReward

    settings = config.agreement
    gold_fn = make_gold_reward(settings.gold_reward)
    reward = RewardModelReward(
        rm_dir,
        max_length=config.reward_model.data.max_length,
        use_chat_template=config.task.use_chat_template,
        batch_size=config.reward_model.train.eval_batch_size,
    )
    prompts = task_prompt_texts(config.task, "held_out", config.seed, dialogue=config.rlcd.prompt_format == "dialogue")
    prompts = prompts[: settings.num_prompts] if settings.num_prompts else prompts
    prompts = [prompt for prompt in prompts for _ in range(settings.pairs_per_prompt)]
    rng = jax.random.fold_in(jax.random.key(config.seed), 3)
    contrast_rows, _ = contrast_pairs(policy, prompts, config, seed=config.seed + 1, rng=jax.random.fold_in(rng, 0))
    start = time.perf_counter()
    ids = [encode_prompt(policy.tokenizer, p, use_chat_template=config.task.use_chat_template) for p in prompts]
    samples = sample_outputs(
        policy,
        ids,
        rlcd.POSTPROCESSORS[config.rlcd.postprocess],
        rng=jax.random.fold_in(rng, 1),
        max_new_tokens=config.rlcd.max_new_tokens,
        temperature=config.rlcd.temperature,
        batch_size=config.rlcd.batch_size,
        max_attempts=config.rlcd.max_attempts,
        num_samples=2,
    )
    iid_rows = [
        {"prompt": prompt, "chosen": first, "rejected": second}
        for prompt, first, second in zip(prompts, samples[0::2], samples[1::2])
        if first and second
    ]
    iid_seconds = time.perf_counter() - start

    def compare(rows):
        texts = [row["prompt"] for row in rows]
        margins = {}
        for name, fn in (("rm", reward), ("gold", gold_fn)):
            chosen = np.asarray(fn(texts, [row["chosen"] for row in rows]), np.float64)
            margins[name] = chosen - np.asarray(fn(texts, [row["rejected"] for row in rows]), np.float64)
        return gold_agreement(margins["rm"], margins["gold"])

    start = time.perf_counter()
    results = {
        "iid": compare(iid_rows),
        "contrast": {
            **compare(contrast_rows),
            **{f"gold_{k}": v for k, v in label_accuracy(gold_fn, contrast_rows).items()},
        },
        "train_pairs": label_accuracy(gold_fn, train_rows),
        "num_held_out_prompts": len(prompts),
        "iid_generate_seconds": iid_seconds,
        "score_seconds": time.perf_counter() - start,
    }
    run_dir.write_json(workdir, "rm_gold_agreement.json", results)
    return results


def run(config, workdir: str) -> dict:
    """Runs the stages whose outputs are missing (module docstring); returns what each stage reported."""
    _check(config)
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    model_config = base_model_config(config, workdir)
    loaded = {}

    def policy():
        if "lm" not in loaded:
            loaded["lm"] = build_model(model_config, mesh, rules)
        return loaded["lm"]

    results = {}
    dialogue = config.rlcd.prompt_format == "dialogue"
    pairs_path = os.path.join(workdir, "pairs.jsonl")
    if not os.path.exists(pairs_path):
        prompts = task_prompt_texts(config.task, "train", config.seed, dialogue=dialogue)
        num_pairs = config.rlcd.num_pairs or len(prompts)
        prompts = [prompts[i % len(prompts)] for i in range(num_pairs)]
        rng = jax.random.fold_in(jax.random.key(config.seed), 1)
        rows, stats = contrast_pairs(policy(), prompts, config, seed=config.seed, rng=rng)
        if not rows:
            raise RuntimeError(f"no RLCD pair survived post-processing ({stats}); see config.rlcd.postprocess")
        write_jsonl(rows, pairs_path)
        run_dir.write_json(workdir, "pairs_stats.json", stats)
        logging.info("rlcd: %d pairs (%.2f s per sample)", stats["num_pairs"], stats["seconds_per_sample"])
        results["pairs"] = stats
    train_rows = [{k: v for k, v in row.items() if k != "_source"} for row in read_jsonl(pairs_path)]

    if config.rlcd.rescore:
        rescored_path = os.path.join(workdir, "pairs_rescored.jsonl")
        if not os.path.exists(rescored_path):
            from rlaif_jax.feedback import choice_probabilities

            positive_first = np.random.default_rng([config.seed, 11]).random(len(train_rows)) < 0.5
            texts = rlcd.rescore_prompts(train_rows, rlcd.affix_set(config.rlcd.affixes), positive_first)
            start = time.perf_counter()
            probabilities = choice_probabilities(
                policy(), texts, choices=("A", "B"), batch_size=config.rlcd.rescore_batch_size
            )
            rescored = rlcd.rescored_rows(train_rows, probabilities, positive_first)
            write_jsonl(rescored, rescored_path)
            flipped = float(np.mean([row["positive_win_prob"] < 0.5 for row in rescored]))
            results["rescore"] = {"flipped": flipped, "seconds_per_pair": (time.perf_counter() - start) / len(texts)}
            run_dir.write_json(workdir, "rescore_stats.json", results["rescore"])
        pairs_path = rescored_path
        train_rows = [{k: v for k, v in row.items() if k != "_source"} for row in read_jsonl(pairs_path)]

    rm_dir = os.path.join(workdir, "reward_model")
    if not os.path.exists(os.path.join(rm_dir, "hf_model", "config.json")):
        from rlaif_jax.pipelines import reward_model as reward_model_pipeline

        rm_config = config.reward_model.copy_and_resolve_references()
        with rm_config.unlocked():
            rm_config.model = model_config.copy_and_resolve_references()
            rm_config.model.scalar_head = True
            rm_config.mesh = config.mesh.copy_and_resolve_references()
            rm_config.data.source = "jsonl"
            rm_config.data.train_file = pairs_path
            rm_config.data.eval_file = ""
            rm_config.data.use_chat_template = config.task.use_chat_template
            rm_config.export_hf = True
        start = time.perf_counter()
        results["reward_model"] = reward_model_pipeline.run(rm_config, rm_dir)
        if not os.path.exists(os.path.join(rm_dir, "hf_model", "config.json")):
            return results  # stopped early (train.stop_at_step): re-run to resume
        results["reward_model"]["seconds"] = time.perf_counter() - start

    agreement_path = os.path.join(workdir, "rm_gold_agreement.json")
    if config.agreement.gold_reward and not os.path.exists(agreement_path):
        results["agreement"] = _agreement_stage(config, workdir, policy(), rm_dir, train_rows)
        logging.info("rlcd: RM-gold agreement %s", results["agreement"])

    ppo_dir = os.path.join(workdir, "ppo")
    if config.run_ppo and not os.path.exists(os.path.join(ppo_dir, "eval_end.json")):
        from rlaif_jax.pipelines import online_rl

        loaded.clear()  # the PPO job loads its own copies
        ppo_config = config.ppo.copy_and_resolve_references()
        with ppo_config.unlocked():
            ppo_config.model = model_config.copy_and_resolve_references()
            ppo_config.mesh = config.mesh.copy_and_resolve_references()
            ppo_config.sft_first = False
            ppo_config.rl.prompts = task_source(config.task, dialogue=dialogue)
            ppo_config.rl.reward = f"reward_model:{rm_dir}"
            ppo_config.rl.use_chat_template = config.task.use_chat_template
            ppo_config.rl.gold_reward = config.agreement.gold_reward  # '' = PPO is evaluated by the RM itself
        start = time.perf_counter()
        results["ppo"] = online_rl.run(ppo_config, ppo_dir)
        results["ppo_seconds"] = time.perf_counter() - start
    return results
