"""RLCD (Yang et al. 2023): the stages' shared code. The experiment is a chain (configs/rlcd.py) of jobs:

demos      (`rlcd_demos`, tiny toy task only) demonstrations whose quality follows the toy affixes, standing in for
           a pretrained LM that understands them -> sft_data.jsonl; then `sft` on them
pairs      (`rlcd_pairs`) for each prompt one affix pair (same-index rule), the policy sampled on p+ and p-,
           post-processed, pairs with both sides kept -> pairs.jsonl {prompt, chosen, rejected, positive_prompt,
           negative_prompt, affix_index} + pairs_stats.json; with `rlcd.rescore` (RLCD-Rescore) also the pairs
           relabelled with the A/B scoring prompt -> pairs_rescored.jsonl
rm         (`reward_model`) on those pairs
agreement  (`rlcd_agreement`, with a gold judge) the RM's agreement with it on fresh held-out pairs ->
           rm_gold_agreement.json
ppo        (`online_rl`) PPO against the RM on the task's prompts
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import numpy as np

from rlaif_jax import sampling
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.tokenize import encode_prompt
from rlaif_jax.data.toy import LETTERS, PROMPT_PREFIX, RESPONSE_LETTERS, toy_rows
from rlaif_jax.feedback import rlcd
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


def read_pair_rows(path: str) -> list[dict]:
    """The rows of a pairs JSONL file (`pairs.jsonl`, `pairs_rescored.jsonl`) without read_jsonl's `_source`."""
    return [{k: v for k, v in row.items() if k != "_source"} for row in read_jsonl(path)]


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


def check_settings(config) -> None:
    """Raises ValueError naming the key of a `config.task` / `config.rlcd` (/ `config.agreement`) the stages cannot
    use."""
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
    if "agreement" in config and config.agreement.gold_reward:
        make_gold_reward(config.agreement.gold_reward)


def agreement_results(config, policy, rm_dir: str, train_rows: Sequence[dict]) -> dict:
    """The agreement stage: RM vs gold on fresh held-out pairs, RLCD contrast pairs and i.i.d. pairs (two samples of
    the plain prompt, the pairs PPO's RM actually compares), plus the gold accuracy of the training labels."""
    from rlaif_jax.rewards.reward_model import RewardModelReward

    settings = config.agreement
    gold_fn = make_gold_reward(settings.gold_reward)
    reward = RewardModelReward(
        rm_dir,
        max_length=settings.max_length,
        use_chat_template=config.task.use_chat_template,
        batch_size=settings.batch_size,
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
    return results
