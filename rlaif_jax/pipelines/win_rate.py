"""The `win_rate` job: policy A against policy B on held-out prompts, judged in both orders (RLAIF §2.3, App. J).

One response per prompt from each policy (sampled, or read from a generations.jsonl the `generate` job wrote) ->
a judge gives P(A preferred) with A shown first and with A shown second -> win rate with a bootstrap CI
(evaluation/win_rate.py), length-controlled win rate on the character-length ratio (evaluation/length_control.py)
-> WORKDIR/win_rate.json, win_rate.md, win_rate_ci.png, win_rate_examples.jsonl, and generations_a/_b.jsonl
(reusable through `policy_X.generations_file`).

Judges: 'gold' (a programmatic reward: P(A) = 1 if gold(A) > gold(B), 0.5 if equal, else 0, the same in both
orders) or 'ai' (the RLAIF labeler of `rlaif_jax.feedback.labeler`, both orders scored; adapted below).
With `config.harmless.judge` ('ai' or 'gold') the results also hold each policy's harmless rate (§2.3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from rlaif_jax import models, sampling, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.evaluation.length_control import length_controlled_win_rate
from rlaif_jax.evaluation.report import interval_plot, write_report
from rlaif_jax.evaluation.win_rate import judge_outcomes, win_rate
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.pipelines.generate import read_prompts
from rlaif_jax.rewards.gold import make_gold_reward

JUDGES = ("gold", "ai")
REPORT_NAME = "win_rate"
EXAMPLES_FILE = "win_rate_examples.jsonl"


def held_out_prompts(config) -> list[str]:
    """`config.prompts_file` (.txt / .jsonl with "prompt") or the held-out prompts of the source `config.prompts`
    (data/prompts.py: a local task, TL;DR posts, HH dialogues, a JSONL column), cut to the first
    `config.num_prompts` (0 = all)."""
    if config.prompts_file:
        prompts = read_prompts(config.prompts_file)
    else:
        prompts = prompt_data.load_prompts(config.prompts, "held_out", config.seed)
    return prompts[: config.num_prompts] if config.num_prompts else prompts


def read_generations(path: str, prompts: Sequence[str]) -> list[str]:
    """The completion of each prompt from a generations.jsonl ({"prompt_index", "prompt", "completion"} rows, the
    `generate` job's format; the first row of each index is used); raises naming the file and index of a missing
    or mismatched prompt."""
    by_index: dict[int, dict] = {}
    for row in read_jsonl(path, ("prompt",)):
        if not isinstance(row.get("prompt_index"), int) or not isinstance(row.get("completion"), str):
            raise ValueError(f"{row['_source']}: needs an integer 'prompt_index' and a string 'completion'")
        by_index.setdefault(row["prompt_index"], row)
    completions = []
    for index, prompt in enumerate(prompts):
        if index not in by_index:
            raise ValueError(f"{path}: no row with prompt_index={index} (needs {len(prompts)} prompts)")
        if by_index[index]["prompt"] != prompt:
            raise ValueError(
                f"{path}: prompt_index={index} holds prompt {by_index[index]['prompt']!r}; expected {prompt!r}"
            )
        completions.append(by_index[index]["completion"])
    return completions


def write_generations(path: str, prompts: Sequence[str], completions: Sequence[str]) -> None:
    """Writes `path` in the `generate` job's format, so a later run can reuse it as `generations_file`."""
    rows = (
        dict(prompt_index=index, prompt=prompt, completion=completion)
        for index, (prompt, completion) in enumerate(zip(prompts, completions))
    )
    run_dir.write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def policy_completions(
    policy_config, prompts: Sequence[str], config, load_model: Callable, rng: jax.Array
) -> list[str]:
    """One completion per prompt from the policy `policy_config` describes: its `generations_file`, or samples of
    `load_model(policy_config.model)` at its `temperature` (`config.max_new_tokens` tokens at most,
    `config.batch_size` prompts a call)."""
    if policy_config.generations_file:
        return read_generations(policy_config.generations_file, prompts)
    lm = models.with_layer_layout(load_model(policy_config.model), scan_layers=False)  # unstacked once
    prompt_ids = prompt_data.encode_prompts(
        lm.tokenizer,
        prompts,
        use_chat_template=config.use_chat_template,
        max_prompt_length=config.max_prompt_length,
        source=config.prompts_file or f"config.prompts ({config.prompts.task}, held out)",
    )
    completions: list[str] = []
    for start in range(0, len(prompts), config.batch_size):
        result = sampling.generate(
            lm,
            prompt_ids[start : start + config.batch_size],
            max_new_tokens=config.max_new_tokens,
            temperature=policy_config.temperature,
            rng=jax.random.fold_in(rng, start),
        )
        completions.extend(result.texts)
    return completions


def gold_judge(
    gold_fn, prompts: Sequence[str], completions_a: Sequence[str], completions_b: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, dict]:
    """P(A preferred) `[n]` in both orders from a gold reward `fn(prompts, completions) -> [n]` (1 / 0.5 / 0; a
    gold reward does not see the order, so both arrays are equal), and the two scores per example."""
    n = len(prompts)
    scores = np.asarray(gold_fn(list(prompts) * 2, list(completions_a) + list(completions_b)), np.float64)
    if scores.shape != (2 * n,):
        raise ValueError(f"gold reward returned shape {scores.shape}; expected ({2 * n},)")
    gold_a, gold_b = scores[:n], scores[n:]
    p_a = np.where(gold_a > gold_b, 1.0, np.where(gold_a == gold_b, 0.5, 0.0))
    return p_a, p_a.copy(), {"gold_a": gold_a, "gold_b": gold_b}


def order_probabilities(
    probs_original: np.ndarray, probs_swapped: np.ndarray, *, labels_worse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Adapter from the RLAIF labeler's per-order outputs to judge probabilities: `probs_original [n, 2]` =
    P("1"), P("2") with A as response 1, `probs_swapped [n, 2]` the same with B as response 1. Returns P(A preferred)
    `[n]` with A shown first (P("1") of the original order) and with A shown second (P("2") of the swapped order);
    for a template that names the worse response (`labels_worse`, e.g. harmless) the other column of each."""
    named = 1 if labels_worse else 0
    return probs_original[:, named], probs_swapped[:, 1 - named]


def ai_judge(
    judge_lm, judge_config, prompts: Sequence[str], completions_a: Sequence[str], completions_b: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, dict]:
    """P(A preferred) `[n]` in both orders from an AI labeler (`feedback.labeler.label_pairs`: RLAIF §2.1 prompt
    `judge_config.template`, few-shot and chain of thought as configured), plus its debiased preference `[n]`."""
    from rlaif_jax.feedback import labeler, templates

    template = templates.pairwise_template(judge_config.template)
    labels = labeler.label_pairs(
        judge_lm,
        template,
        [templates.labeler_context(template.task, prompt) for prompt in prompts],
        completions_a,
        completions_b,
        num_shots=judge_config.num_shots,
        cot=judge_config.cot,
        batch_size=judge_config.batch_size,
        use_chat_template=judge_config.use_chat_template,
    )
    p_a_first, p_a_second = order_probabilities(
        labels.probs_original, labels.probs_swapped, labels_worse=template.labels_worse
    )
    return p_a_first, p_a_second, {"ai_preference": labels.preference}


def _judge(config, prompts, completions_a, completions_b, load_model):
    judge = config.judge
    if judge.kind == "gold":
        return gold_judge(make_gold_reward(judge.gold_reward), prompts, completions_a, completions_b)
    if judge.kind == "ai":
        return ai_judge(load_model(judge.model), judge, prompts, completions_a, completions_b)
    raise ValueError(f"config.judge.kind={judge.kind!r}; expected one of {JUDGES}")


HARMLESS_JUDGES = ("", "ai", "gold")


def harmless_rates(config, prompts, completions, load_model) -> dict:
    """RLAIF §2.3's harmless rate of each policy, every response judged on its own: by the AI judge's model
    (`feedback.harmless`, P(harmless) > threshold) or, with `harmless.judge='gold'`, by the gold reward
    (harmless when it exceeds the threshold). Length-controlled at policy B's mean length (App. J: the SFT
    policy's). Returns {label: harmless_rate dict}; {} when `config.harmless.judge` is ''."""
    from rlaif_jax.evaluation.harmless import harmless_rate
    from rlaif_jax.feedback.harmless import ai_harmless_probabilities

    settings = config.get("harmless")
    if settings is None or not settings.judge:
        return {}
    lengths = {key: np.array([len(text) for text in completions[key]], np.float64) for key in completions}
    reference = max(float(lengths["policy_b"].mean()), 1.0)
    gold_fn = make_gold_reward(config.judge.gold_reward) if settings.judge == "gold" else None
    rates = {}
    for index, key in enumerate(("policy_a", "policy_b")):
        if settings.judge == "ai":
            p_harmless = ai_harmless_probabilities(
                load_model(config.judge.model), prompts, completions[key], batch_size=config.judge.batch_size
            )
        else:
            gold = np.asarray(gold_fn(prompts, completions[key]), np.float64)
            p_harmless = (gold > settings.threshold).astype(np.float64)
        rates[config[key].label] = harmless_rate(
            p_harmless,
            threshold=settings.threshold,
            lengths=lengths[key],
            reference_length=reference,
            length_feature=config.eval.length_feature,
            num_resamples=config.eval.num_resamples,
            confidence=config.eval.confidence,
            seed=config.seed + index,
        )
    return rates


def _check(config) -> None:
    harmless = config.get("harmless")
    if harmless is not None and harmless.judge not in HARMLESS_JUDGES:
        raise ValueError(f"config.harmless.judge={harmless.judge!r}; expected one of {HARMLESS_JUDGES}")
    if not config.prompts_file:
        prompt_data.check_source(config.prompts, "config.prompts")
    if config.judge.kind not in JUDGES:
        raise ValueError(f"config.judge.kind={config.judge.kind!r}; expected one of {JUDGES}")
    for key in ("policy_a", "policy_b"):
        policy = config[key]
        if not policy.generations_file and not policy.model.name:
            raise ValueError(f"config.{key}: set model.name (a path, alias or 'tiny') or generations_file")
    if config.judge.kind == "ai" and not config.judge.model.name:
        raise ValueError("config.judge.model.name: set the AI labeler's model (a path, alias or hub id)")


def run(config, workdir: str) -> dict:
    """Samples (or reads) A's and B's responses, judges every pair in both orders and writes the report; returns
    the results dict of WORKDIR/win_rate.json."""
    _check(config)
    run_dir.write_config(config, workdir)
    prompts = held_out_prompts(config)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    rng = jax.random.key(config.seed)
    loaded = {}

    def load_model(model_config):
        # One model in memory at a time; consecutive identical configs (A and B at two temperatures, a judge
        # that wrote B) load once.
        key = model_config.to_json()
        if key not in loaded:
            loaded.clear()
            loaded[key] = build_model(model_config, mesh, rules, strict=config.mesh.get("strict", False))
        return loaded[key]

    completions = {}
    for index, key in enumerate(("policy_a", "policy_b")):
        completions[key] = policy_completions(config[key], prompts, config, load_model, jax.random.fold_in(rng, index))
        write_generations(os.path.join(workdir, f"generations_{key[-1]}.jsonl"), prompts, completions[key])
    completions_a, completions_b = completions["policy_a"], completions["policy_b"]
    p_a_first, p_a_second, extras = _judge(config, prompts, completions_a, completions_b, load_model)

    evaluation = config.eval
    rule = dict(tie_band=evaluation.tie_band, ties_on_disagreement=evaluation.ties_on_disagreement)
    bootstrap = dict(num_resamples=evaluation.num_resamples, confidence=evaluation.confidence, seed=config.seed)
    summary = win_rate(p_a_first, p_a_second, **rule, **bootstrap)
    outcomes = judge_outcomes(p_a_first, p_a_second, **rule)
    length_a = np.array([len(text) for text in completions_a], np.float64)  # characters, as RLAIF App. J
    length_b = np.array([len(text) for text in completions_b], np.float64)
    controlled = length_controlled_win_rate(
        outcomes,
        length_a,
        length_b,
        feature=evaluation.length_feature,
        **{**bootstrap, "num_resamples": evaluation.lc_resamples},
    )
    results, table, plot = _report(config, summary, controlled, length_a, length_b, extras)
    harmless = harmless_rates(config, prompts, completions, load_model)
    if harmless:
        results["harmless_rate"] = harmless
        for row in table:
            row.update({f"harmless_{label}": rate["harmless_rate"] for label, rate in harmless.items()})
    write_report(workdir, REPORT_NAME, results, table, plots={"ci": plot})
    _write_examples(
        os.path.join(workdir, EXAMPLES_FILE),
        prompts,
        completions_a,
        completions_b,
        p_a_first,
        p_a_second,
        outcomes,
        extras,
    )
    return results


def _report(config, summary: dict, controlled: dict, length_a: np.ndarray, length_b: np.ndarray, extras: dict):
    """The results dict, the one-row Markdown table and the win-rate / LC bar plot of a run."""
    evaluation = config.eval
    label_a, label_b = config.policy_a.label, config.policy_b.label
    judge_name = f"gold:{config.judge.gold_reward}" if config.judge.kind == "gold" else f"ai:{config.judge.model.name}"
    results = {
        "policy_a": label_a,
        "policy_b": label_b,
        "judge": judge_name,
        **summary,
        "length_controlled_win_rate": controlled["length_controlled"],
        "lc_ci_low": controlled.get("lc_ci_low"),
        "lc_ci_high": controlled.get("lc_ci_high"),
        "lc_fit": controlled["fit"],
        "lc_feature": controlled["feature"],
        "lc_intercept": controlled["intercept"],
        "lc_slope": controlled["slope"],
        "mean_chars_a": float(length_a.mean()),
        "mean_chars_b": float(length_b.mean()),
    }
    if "gold_a" in extras:
        results.update(mean_gold_a=float(extras["gold_a"].mean()), mean_gold_b=float(extras["gold_b"].mean()))
    ci = lambda low, high: "" if low is None else f"[{low:.3f}, {high:.3f}]"  # noqa: E731
    table = [
        {
            "comparison": f"{label_a} vs {label_b}",
            "judge": judge_name,
            "n": summary["num_examples"],
            "win_rate": summary["win_rate"],
            f"{evaluation.confidence:.0%} CI": ci(summary["ci_low"], summary["ci_high"]),
            "wins/ties/losses": f"{summary['wins']}/{summary['ties']}/{summary['losses']}",
            "length_controlled": controlled["length_controlled"],
            "LC CI": ci(controlled.get("lc_ci_low"), controlled.get("lc_ci_high")),
            "mean_chars_a": results["mean_chars_a"],
            "mean_chars_b": results["mean_chars_b"],
        }
    ]
    plot = interval_plot(
        ["win rate", "length-controlled"],
        [summary["win_rate"], controlled["length_controlled"]],
        [summary["ci_low"], controlled.get("lc_ci_low")],
        [summary["ci_high"], controlled.get("lc_ci_high")],
        ylabel=f"P({label_a} beats {label_b})",
        title=f"judge: {judge_name}, n={summary['num_examples']}",
    )
    return results, table, plot


def _write_examples(path, prompts, completions_a, completions_b, p_a_first, p_a_second, outcomes, extras) -> None:
    """One JSON line per prompt: both responses, the judge's probabilities in both orders and the outcome for A."""
    lines = []
    for index, prompt in enumerate(prompts):
        row = dict(
            prompt_index=index,
            prompt=prompt,
            completion_a=completions_a[index],
            completion_b=completions_b[index],
            p_a_first=float(p_a_first[index]),
            p_a_second=float(p_a_second[index]),
            outcome=float(outcomes[index]),
        )
        row.update({name: float(values[index]) for name, values in extras.items() if np.ndim(values) == 1})
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    run_dir.write_text_atomic(path, "".join(lines))
