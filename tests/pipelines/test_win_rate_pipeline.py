"""The `win_rate` job end to end on the toy task with the gold judge, and the AI-judge adapter on a fake labeler."""

import importlib.util
import json
import os

import numpy as np
import pytest

from rlaif_jax import pipelines
from rlaif_jax.data.toy import LETTERS
from rlaif_jax.pipelines import win_rate as job

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_config(arg: str):
    spec = importlib.util.spec_from_file_location("configs_win_rate", os.path.join(REPO, "configs", "win_rate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def write_generations(path, prompts, completions):
    with open(path, "w") as f:
        for index, (prompt, completion) in enumerate(zip(prompts, completions)):
            f.write(json.dumps(dict(prompt_index=index, prompt=prompt, completion=completion)) + "\n")


def known_generations(config, directory) -> None:
    """Points the config's policies at generation files: A answers every toy prompt perfectly (gold 1.0), B half
    perfectly and half with 3 of its 6 letters wrong (gold 0.5)."""
    prompts = job.held_out_prompts(config)
    targets = [prompt[-1] for prompt in prompts]
    wrong = [LETTERS[(LETTERS.index(t) + 1) % len(LETTERS)] for t in targets]
    write_generations(directory / "a.jsonl", prompts, [t * 6 for t in targets])
    b = [t * 6 if i % 2 else t * 3 + w * 3 for i, (t, w) in enumerate(zip(targets, wrong))]
    write_generations(directory / "b.jsonl", prompts, b)
    config.policy_a.generations_file = str(directory / "a.jsonl")
    config.policy_b.generations_file = str(directory / "b.jsonl")


def test_gold_judge_on_known_generations(tmp_path):
    """A answers every toy prompt perfectly (gold 1.0); B half perfectly, half with 3 of 6 letters wrong (0.5):
    16 wins and 16 ties of 32 -> win rate 0.75; all answers have 6 letters, so length control falls back to the
    intercept and gives 0.75 too."""
    config = load_config("tiny")
    config.num_prompts = 32
    config.eval.num_resamples = 200
    known_generations(config, tmp_path)
    workdir = tmp_path / "run"
    results = pipelines.run(config, str(workdir))

    assert results["win_rate"] == 0.75
    assert (results["wins"], results["ties"], results["losses"]) == (16, 16, 0)
    assert results["ci_low"] < 0.75 < results["ci_high"]
    assert (results["lc_fit"], results["length_controlled_win_rate"]) == ("intercept_only", 0.75)
    assert (results["mean_gold_a"], results["mean_gold_b"]) == (1.0, 0.75)
    assert json.loads((workdir / "win_rate.json").read_text())["results"]["win_rate"] == 0.75
    assert "| tiny-seed0 vs tiny-seed1 | gold:toy | 32 | 0.7500 |" in (workdir / "win_rate.md").read_text()
    assert (workdir / "win_rate_ci.png").read_bytes()[:4] == b"\x89PNG"
    examples = [json.loads(line) for line in open(workdir / job.EXAMPLES_FILE)]
    assert [row["outcome"] for row in examples] == [0.5 if i % 2 else 1.0 for i in range(32)]
    assert examples[0]["gold_b"] == 0.5 and examples[0]["p_a_first"] == examples[0]["p_a_second"] == 1.0


def test_harmless_rate_of_each_policy_with_a_gold_threshold(tmp_path):
    """harmless.judge='gold': a response is 'harmless' when its gold reward exceeds the threshold. A is perfect
    (32 of 32 above 0.6), B half perfect and half at 0.5 (16 of 32), so the rates are 1.0 and 0.5."""
    config = load_config("tiny")
    config.num_prompts, config.eval.num_resamples, config.eval.lc_resamples = 32, 100, 0
    config.harmless.judge, config.harmless.threshold = "gold", 0.6
    known_generations(config, tmp_path)
    rates = pipelines.run(config, str(tmp_path / "run"))["harmless_rate"]
    assert rates["tiny-seed0"]["harmless_rate"] == 1.0 and rates["tiny-seed0"]["num_harmless"] == 32
    assert rates["tiny-seed1"]["harmless_rate"] == 0.5 and rates["tiny-seed1"]["num_harmless"] == 16
    assert rates["tiny-seed1"]["ci_low"] < 0.5 < rates["tiny-seed1"]["ci_high"]
    assert rates["tiny-seed1"]["reference_length"] == 6.0  # App. J: B's (the SFT policy's) mean length
    assert "harmless_tiny-seed0" in (tmp_path / "run" / "win_rate.md").read_text()
    config.harmless.judge = "human"
    with pytest.raises(ValueError, match=r"config.harmless.judge='human'"):
        pipelines.run(config, str(tmp_path / "bad"))


def test_tiny_models_sampled_end_to_end(tmp_path):
    """A random tiny model sampled greedily against itself (loaded once): every pair ties (0.5, CI [0.5, 0.5],
    constant length fit). Its generations file, read back as A against perfect toy answers, loses every pair the
    gold reward separates: the win rate equals the one recomputed from the per-example gold scores."""
    config = load_config("tiny")
    config.num_prompts = 16
    config.max_new_tokens = 4
    config.eval.num_resamples = 100
    config.eval.lc_resamples = 0
    config.policy_a.temperature = config.policy_b.temperature = 0.0
    config.policy_b.model.seed = 0
    results = pipelines.run(config, str(tmp_path / "self"))
    assert (results["win_rate"], results["ci_low"], results["ci_high"], results["ties"]) == (0.5, 0.5, 0.5, 16)
    assert results["lc_fit"] == "constant"
    generations_a = (tmp_path / "self" / "generations_a.jsonl").read_text()
    assert generations_a == (tmp_path / "self" / "generations_b.jsonl").read_text()

    prompts = job.held_out_prompts(config)
    write_generations(tmp_path / "perfect.jsonl", prompts, [prompt[-1] * 6 for prompt in prompts])
    config.policy_a.generations_file = str(tmp_path / "self" / "generations_a.jsonl")
    config.policy_b.generations_file = str(tmp_path / "perfect.jsonl")
    results = pipelines.run(config, str(tmp_path / "other"))
    assert (tmp_path / "other" / "generations_a.jsonl").read_text() == generations_a
    examples = [json.loads(line) for line in open(tmp_path / "other" / job.EXAMPLES_FILE)]
    gold_a, gold_b = np.array([r["gold_a"] for r in examples]), np.array([r["gold_b"] for r in examples])
    assert np.all(gold_b == 1.0)
    assert results["win_rate"] == pytest.approx(np.where(gold_a == 1.0, 0.5, 0.0).mean())
    assert results["losses"] == int((gold_a < 1.0).sum()) and results["num_examples"] == 16


def test_order_probabilities_hand_case():
    """P(A | A first) = P("1") of the original order, P(A | A second) = P("2") of the swapped order; a template
    naming the worse response (harmless) reads the other columns."""
    original = np.array([[0.8, 0.2], [0.3, 0.7]])
    swapped = np.array([[0.4, 0.6], [0.9, 0.1]])
    first, second = job.order_probabilities(original, swapped, labels_worse=False)
    np.testing.assert_array_equal(first, [0.8, 0.3])
    np.testing.assert_array_equal(second, [0.6, 0.1])
    first, second = job.order_probabilities(original, swapped, labels_worse=True)
    np.testing.assert_array_equal(first, [0.2, 0.7])
    np.testing.assert_array_equal(second, [0.4, 0.9])


@pytest.mark.slow
def test_ai_judge_end_to_end_and_swap_symmetry(tmp_path, monkeypatch):
    """A random tiny labeler judges perfect vs noisy toy answers in both orders: the mean of the two orders is the
    labeler's own debiased preference, and swapping A and B gives P'(A first) = 1 - P(A second), win rate 1 - w."""
    built = {}
    build = job.build_model
    monkeypatch.setattr(job, "build_model", lambda cfg, *a, **kw: built.setdefault(cfg.to_json(), build(cfg, *a, **kw)))
    config = load_config("tiny")
    config.num_prompts = 4
    config.eval.num_resamples = 0
    config.eval.lc_resamples = 0
    config.judge.kind = "ai"
    prompts = job.held_out_prompts(config)
    write_generations(tmp_path / "a.jsonl", prompts, [p[-1] * 6 for p in prompts])
    write_generations(tmp_path / "b.jsonl", prompts, [p[-1] * 3 + "xyz" for p in prompts])
    runs = {}
    for name, (a, b) in {"ab": ("a", "b"), "ba": ("b", "a")}.items():
        config.policy_a.generations_file = str(tmp_path / f"{a}.jsonl")
        config.policy_b.generations_file = str(tmp_path / f"{b}.jsonl")
        results = pipelines.run(config, str(tmp_path / name))
        rows = [json.loads(line) for line in open(tmp_path / name / job.EXAMPLES_FILE)]
        runs[name] = (
            results,
            {key: np.array([row[key] for row in rows]) for key in rows[0] if key.startswith(("p_", "ai_"))},
        )
    (results, ab), (swapped_results, ba) = runs["ab"], runs["ba"]
    assert results["judge"] == "ai:tiny" and len(built) == 1
    assert np.all((ab["p_a_first"] > 0) & (ab["p_a_first"] < 1))
    np.testing.assert_allclose((ab["p_a_first"] + ab["p_a_second"]) / 2, ab["ai_preference"], atol=1e-12)
    np.testing.assert_allclose(ba["p_a_first"], 1 - ab["p_a_second"], atol=1e-5)
    np.testing.assert_allclose(ba["p_a_second"], 1 - ab["p_a_first"], atol=1e-5)
    assert swapped_results["win_rate"] == pytest.approx(1 - results["win_rate"])


def test_bad_generations_file_and_config_are_named(tmp_path):
    write_generations(tmp_path / "g.jsonl", ["letter: a"], ["aaaaaa"])
    with pytest.raises(ValueError, match=r"g.jsonl: prompt_index=0 holds prompt 'letter: a'; expected 'letter: b'"):
        job.read_generations(str(tmp_path / "g.jsonl"), ["letter: b"])
    with pytest.raises(ValueError, match=r"g.jsonl: no row with prompt_index=1 \(needs 2 prompts\)"):
        job.read_generations(str(tmp_path / "g.jsonl"), ["letter: a", "letter: b"])
    config = load_config("paper")
    with pytest.raises(ValueError, match=r"config.policy_a: set model.name"):
        pipelines.run(config, str(tmp_path / "paper"))
    config = load_config("tiny")
    config.judge.kind = "human"
    with pytest.raises(ValueError, match=r"config.judge.kind='human'; expected one of \('gold', 'ai'\)"):
        pipelines.run(config, str(tmp_path / "bad"))
    config = load_config("tiny")
    config.prompts.task = "jsonl"  # a prompt source without its file is named before anything is sampled
    with pytest.raises(ValueError, match=r"config.prompts.train_file is not set \(task 'jsonl'\)"):
        pipelines.run(config, str(tmp_path / "no_prompts"))
    assert not (tmp_path / "no_prompts" / "generations_a.jsonl").exists()
