"""The `preference` job end to end on the toy task: every method raises the held-out gold reward over its SFT start at
a bounded KL; resume reproduces the straight run; bad input names the field, file and row."""

import json
import os

import numpy as np
import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.models.byte_tokenizer import byte_tokenizer
from rlaif_jax.pipelines import preference
from rlaif_jax.workdir import read_metrics

# name -> (config file, overrides of config.loss)
METHODS = {
    "dpo": ("dpo", {}),
    "ipo": ("ipo", {}),
    "hinge": ("dpo", {"loss_type": "hinge"}),
    "cdpo": ("dpo", {"label_smoothing": 0.1}),
    "slic": ("slic", {}),
    "rrhf": ("rrhf", {}),
    "rso": ("rso", {}),
}


def tiny_config(name: str, sft_model: str, **train):
    config_file, loss = METHODS[name]
    config = config_defaults.load_config_file(config_file, "tiny")
    config.sft_first = False
    config.model.name = sft_model
    config.eval.num_prompts = 64
    config.loss.update(loss)
    config.train.update(train)
    return config


@pytest.fixture(scope="module")
def dpo_run(sft_model, tmp_path_factory):
    """The uninterrupted DPO run, shared by the DPO test and the resume test."""
    workdir = tmp_path_factory.mktemp("dpo")
    return str(workdir), pipelines.run(tiny_config("dpo", sft_model), str(workdir))


def check_improves(results, record_diff):
    start, end = results["start"], results["end"]
    assert start["kl"] == 0.0  # the start policy is the reference
    gain = record_diff("gold reward gain over SFT", end["gold_reward"] - start["gold_reward"], 0.1, ">")
    assert gain > 0.1, results
    assert record_diff("KL(policy || SFT), nats/sequence", end["kl"], 8.0) <= 8.0, results
    assert 0.0 < end["kl"], results


def test_dpo_raises_gold_reward(dpo_run, record_diff):
    workdir, results = dpo_run
    check_improves(results, record_diff)
    assert json.loads(open(os.path.join(workdir, "eval_end.json")).read()) == results["end"]
    samples = [json.loads(line) for line in open(os.path.join(workdir, "samples.jsonl"))]
    assert len(samples) == 256 and all(len(row["responses"]) == len(row["rewards"]) == 4 for row in samples)
    # best_worst pairs: one per prompt whose 4 rewards are not all equal.
    assert results["num_examples"] == sum(len(set(row["rewards"])) > 1 for row in samples)
    metrics = read_metrics(workdir)
    assert metrics[0]["loss"] < np.log(2) and metrics[-1]["loss"] < metrics[0]["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ipo", "hinge", "cdpo", "slic", "rrhf", "rso"])
def test_method_raises_gold_reward(name, sft_model, tmp_path, record_diff):
    results = pipelines.run(tiny_config(name, sft_model), str(tmp_path))
    check_improves(results, record_diff)


@pytest.mark.slow
def test_resume_reproduces_the_straight_run(dpo_run, sft_model, tmp_path, monkeypatch):
    straight_dir, straight = dpo_run
    workdir = str(tmp_path)
    first = pipelines.run(tiny_config("dpo", sft_model, stop_at_step=10), workdir)
    assert "end" not in first and not os.path.exists(os.path.join(workdir, "eval_end.json"))
    samples_text = open(os.path.join(workdir, "samples.jsonl")).read()
    assert samples_text == open(os.path.join(straight_dir, "samples.jsonl")).read()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a resumed run resampled or recomputed what WORKDIR already holds")

    monkeypatch.setattr(preference, "sample_responses", must_not_run)
    monkeypatch.setattr(preference, "reference_logprobs", must_not_run)
    resumed = pipelines.run(tiny_config("dpo", sft_model), workdir)
    keys = ("step", "loss", "accuracy", "reward_margin")
    assert [[row[k] for k in keys] for row in read_metrics(workdir)] == [
        [row[k] for k in keys] for row in read_metrics(straight_dir)
    ]
    assert resumed["start"] == straight["start"] and resumed["end"] == straight["end"]


def test_unknown_method_and_pairing_are_named(tmp_path):
    config = config_defaults.load_config_file("dpo", "tiny")
    config.loss.method = "ppo"
    with pytest.raises(ValueError, match=r"config.loss.method='ppo'; expected one of \('dpo', 'slic', 'rrhf', 'rso'\)"):
        pipelines.run(config, str(tmp_path))
    config = config_defaults.load_config_file("rso", "tiny")
    config.data.pairing = "best_worst"
    with pytest.raises(ValueError, match=r"pairing='best_worst' for method 'rso'; expected one of \('first_round'"):
        pipelines.run(config, str(tmp_path))


def test_jsonl_missing_column_names_file_and_row(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(
        json.dumps({"prompt": "letter: a", "chosen": "aaaaaa", "rejected": "bbbbbb"})
        + "\n"
        + json.dumps({"prompt": "letter: b", "chosen": "bbbbbb"})
        + "\n"
    )
    config = config_defaults.load_config_file("dpo", "tiny")
    config.data.source = "jsonl"
    config.data.train_file = str(path)
    with pytest.raises(ValueError, match=r"prefs.jsonl:2: missing column 'rejected'"):
        preference.load_rows(config, str(tmp_path), policy=None, rng=None)
    # SLiC with y_ref = the SFT target needs a 'target' column.
    path.write_text(json.dumps({"prompt": "letter: a", "chosen": "aaaaaa", "rejected": "bbbbbb"}) + "\n")
    config.loss = config_defaults.load_config_file("slic", "tiny").loss
    config.loss.calibration_target = "sft"
    rows = preference.load_rows(config, str(tmp_path), policy=None, rng=None)
    with pytest.raises(ValueError, match=r"prefs.jsonl:1: missing or empty column 'target'"):
        preference.training_arrays(config, rows, byte_tokenizer())
    config.loss.calibration_target = "best"  # the chosen response
    arrays = preference.training_arrays(config, rows, byte_tokenizer())
    np.testing.assert_array_equal(arrays["target_tokens"], arrays["chosen_tokens"])


def test_reference_cache_mismatch_names_the_file(tmp_path):
    arrays = {
        "chosen_tokens": np.zeros((3, 4), np.int32),
        "chosen_loss_mask": np.ones((3, 4), bool),
        "rejected_tokens": np.ones((3, 4), np.int32),
        "rejected_loss_mask": np.ones((3, 4), bool),
    }
    path = str(tmp_path / "reference_logps.npz")
    values = {"reference_chosen_logps": np.float32([-1, -2, -3]), "reference_rejected_logps": np.float32([-4, -5, -6])}
    calls = []
    first = preference.cached_reference_logprobs(path, arrays, lambda: calls.append(1) or values)
    again = preference.cached_reference_logprobs(path, arrays, lambda: calls.append(1) or values)
    assert calls == [1]
    np.testing.assert_array_equal(again["reference_rejected_logps"], [-4, -5, -6])
    np.testing.assert_array_equal(first["reference_chosen_logps"], again["reference_chosen_logps"])
    fewer = {name: array[:2] for name, array in arrays.items()}
    with pytest.raises(ValueError, match=r"reference_logps.npz: reference log-probs of 3 rows, but the data has 2"):
        preference.cached_reference_logprobs(path, fewer, lambda: values)
    changed = dict(arrays, chosen_tokens=arrays["chosen_tokens"] + 1)
    with pytest.raises(ValueError, match=r"reference_logps.npz: computed for other token arrays"):
        preference.cached_reference_logprobs(path, changed, lambda: values)


def test_rso_counts_a_decode_drawn_twice_as_one_candidate():
    config = config_defaults.load_config_file("rso", "tiny")
    config.loss.rso_num_samples, config.loss.rso_beta = 4, 1e6  # β huge: every candidate visited is accepted
    config.data.pairing = "first_round"
    samples = [{"prompt": "letter: a", "responses": ["x", "x", "x", "y", "z", "w"], "rewards": [1, 1, 1, 0, 2, 3]}]
    rows = preference.sampled_rows(config, samples)
    # Candidates x, y, z, w (the x copies are one): 4 kept, 2 first-round pairs, no pair of a text with itself.
    assert len(rows) == 2
    assert sorted(text for row in rows for text in (row["chosen"], row["rejected"])) == ["w", "x", "y", "z"]
