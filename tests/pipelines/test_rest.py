"""ReST (rlaif_jax/pipelines/rest.py): the filter keeps exactly the rows above each threshold, rewards normalise as
documented, Grow files resume bit-identically, and on the toy task the gold reward rises across Improve steps at a
bounded KL to the BC start."""

import hashlib
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from rlaif_jax.data import translation
from rlaif_jax.data.jsonl import write_jsonl
from rlaif_jax.pipelines import rest
from rlaif_jax.workdir import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IWSLT = os.path.join(REPO, "tests", "data", "fixtures", "iwslt2017_de_en.jsonl")


def load_config(arg: str):
    spec = importlib.util.spec_from_file_location("configs_rest", os.path.join(REPO, "configs", "rest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def row(normalized: float, reward: float | None = None, origin: str = "grow_0") -> dict:
    return {
        "source": "s",
        "output": "o",
        "reward": normalized if reward is None else reward,
        "normalized_reward": normalized,
        "origin": origin,
    }


# --- pure functions ------------------------------------------------------------------------------------------------

VALUES = [0.0, 1e-9, 0.6999999, 0.7, 0.7000001, 0.8, 0.8000001, 0.9, 0.9000001, 0.95, 0.9500001, 0.99, 0.9900001, 1.0]
# Indices into VALUES strictly above each τ of the paper's schedule, written out by hand.
EXPECTED_KEPT = {
    0.0: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    0.7: [4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    0.8: [6, 7, 8, 9, 10, 11, 12, 13],
    0.9: [8, 9, 10, 11, 12, 13],
    0.95: [10, 11, 12, 13],
    0.99: [12, 13],
}


def test_improve_filter_keeps_exactly_rows_above_each_threshold():
    rows = [dict(row(value), output=str(index)) for index, value in enumerate(VALUES)]
    assert list(EXPECTED_KEPT) == load_config("paper").improve.thresholds
    for threshold, expected in EXPECTED_KEPT.items():
        kept = rest.improve_filter(rows, threshold)
        assert [int(r["output"]) for r in kept] == expected, threshold
    assert rest.improve_filter(rows, 1.0) == []
    # The filter reads the normalised reward, not the raw one (VADER -0.2 -> 0.4 is below 0.7; 0.5 -> 0.75 above).
    vader = [row(0.4, reward=-0.2), row(0.75, reward=0.5)]
    assert rest.improve_filter(vader, 0.7) == [vader[1]]


def test_threshold_schedule_repeats_its_last_entry():
    assert [rest.threshold_for([0.0, 0.7, 0.8], i) for i in range(5)] == [0.0, 0.7, 0.8, 0.8, 0.8]


def test_normalize_rewards():
    # 'range' with VADER's bounds: (r + 1) / 2, clipped.
    np.testing.assert_allclose(
        rest.normalize_rewards(np.array([-1.0, 0.0, 0.5, 1.0, 1.2]), normalization="range", low=-1.0, high=1.0),
        [0.0, 0.5, 0.75, 1.0, 1.0],
    )
    chrf = np.array([0.0, 0.25, 1.0])  # already in [0, 1]: the identity
    np.testing.assert_array_equal(rest.normalize_rewards(chrf, normalization="range", low=0.0, high=1.0), chrf)
    np.testing.assert_allclose(
        rest.normalize_rewards(np.array([2.0, 4.0, 6.0, 3.0]), normalization="minmax", low=0, high=1),
        [0.0, 0.5, 1.0, 0.25],
    )
    np.testing.assert_array_equal(
        rest.normalize_rewards(np.array([3.0, 3.0]), normalization="minmax", low=0, high=1), [0, 0]
    )
    with pytest.raises(ValueError, match="unknown reward normalization 'zscore'"):
        rest.normalize_rewards(chrf, normalization="zscore", low=0, high=1)
    with pytest.raises(ValueError, match="high > low"):
        rest.normalize_rewards(chrf, normalization="range", low=1.0, high=1.0)


def test_grown_dataset_round_trips_through_its_file(tmp_path):
    samples = [
        {"source": "a", "output": " x", "reward": 0.1, "finished": True, "origin": "grow_0"},
        {"source": "a", "output": "", "reward": 0.30000001192092896, "finished": False, "origin": "grow_0"},
    ]
    original = rest.score_original(
        [{"prompt": "a", "response": " y"}], lambda prompts, completions: np.array([0.5], np.float32)
    )
    assert original == [{"source": "a", "output": " y", "reward": 0.5, "finished": True, "origin": "original"}]
    rows = rest.grown_dataset(samples + original, normalization="minmax", low=0.0, high=1.0)
    assert [r["normalized_reward"] for r in rows] == [0.0, pytest.approx(0.5), 1.0]
    path = str(tmp_path / "grow_0.jsonl")
    write_jsonl(rows, path)
    assert rest.read_grow_file(path) == rows  # floats come back bit for bit
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"source": "a", "output": "b", "reward": 1.0}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing \['normalized_reward', 'origin'\]"):
        rest.read_grow_file(str(bad))
    bad.write_text(json.dumps({**rows[0], "reward": "high"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: 'reward' is not a number"):
        rest.read_grow_file(str(bad))


def test_task_data_of_each_task(tmp_path):
    config = load_config("tiny")
    config.task = "translation"
    config.data.num_sources, config.data.num_original, config.data.num_eval = 100, 10, 20
    data = rest.task_data(config)
    assert len(data.train_prompts) == 100 and len(data.valid_prompts) == len(data.test_prompts) == 20
    assert not set(data.train_prompts) & set(data.test_prompts)
    assert len(data.original_rows) == 10
    references = [translation.translate(p[: -len(translation.PROMPT_SUFFIX)]) for p in data.test_prompts[:2]]
    np.testing.assert_array_equal(data.reward_fn(data.test_prompts[:2], references), [1.0, 1.0])

    config = load_config("smollm2")
    data = rest.task_data(config)
    assert (len(data.train_prompts), len(data.valid_prompts), len(data.test_prompts)) == (64, 16, 16)
    assert not {p.split("'")[1] for p in data.valid_prompts} & {p.split("'")[1] for p in data.test_prompts}
    assert data.original_rows == []

    corpus = tmp_path / "iwslt"
    corpus.mkdir()
    for split in ("train", "validation", "test"):
        shutil.copy(IWSLT, corpus / f"{split}.jsonl")
    config = load_config("paper")
    config.data.corpus = str(corpus)
    config.data.num_original = 2
    data = rest.task_data(config)
    assert data.train_prompts[0] == "Translate from German to English:\nVielen Dank, Chris."
    assert len(data.train_prompts) == 3 and len(data.test_prompts) == 3
    assert data.original_rows[1]["response"].startswith("And it's truly a great honor")
    assert len(data.original_rows) == 2
    np.testing.assert_array_equal(data.reward_fn(data.train_prompts[:1], ["Thank you so much, Chris."]), [1.0])

    config.task = "poetry"
    with pytest.raises(ValueError, match="config.task='poetry'"):
        rest.task_data(config)


def test_markdown_table():
    evaluation = {"gold_reward": 0.5, "kl": 0.0}
    results = {
        "start": {"valid": evaluation, "test": evaluation},
        "grow": [{"grow": 1, "num_samples": 8, "sample_reward": 0.6, "num_original": 4, "original_reward": 0.45}],
        "steps": [
            {"grow": 1, "improve": 0, "threshold": 0.0, "skipped": "τ <= mean normalised reward 0.5500"},
            {
                "grow": 1,
                "improve": 1,
                "threshold": 0.7,
                "num_kept": 3,
                "learning_rate": 0.001,
                "kept": True,
                "valid": {"gold_reward": 0.8, "kl": 1.0},
                "test": {"gold_reward": 0.75, "kl": 1.25},
            },
        ],
    }
    assert rest.markdown_table(results).splitlines() == [
        "| policy | τ | rows kept | learning rate | valid reward | test reward | test KL | kept |",
        "|---|---|---|---|---|---|---|---|",
        "| BC (G=0, I=0) | | | | 0.5000 | 0.5000 | 0.000 | |",
        "| ReST (G=1, I=0) | 0.0 | | | | | | skipped: τ <= mean normalised reward 0.5500 |",
        "| ReST (G=1, I=1) | 0.7 | 3 | 0.001 | 0.8000 | 0.7500 | 1.250 | yes |",
        "",
        "| grow | samples | mean sample reward | original rows | mean original reward |",
        "|---|---|---|---|---|",
        "| 1 | 8 | 0.6000 | 4 | 0.4500 |",
    ]


def test_every_size_builds():
    assert load_config("paper").grow.num_samples == 100
    assert load_config("paper").grow.temperature == 0.8
    policy = load_config("paper").model  # App. A.3's IWSLT "Tiny" encoder-decoder
    assert policy.name == "tiny_t5"
    assert (policy.tiny_t5.num_layers, policy.tiny_t5.num_decoder_layers, policy.tiny_t5.d_model) == (6, 6, 512)
    assert (policy.tiny_t5.num_heads, policy.tiny_t5.d_ff) == (4, 1024)
    assert load_config("smollm2").reward.low == -1.0
    with pytest.raises(ValueError, match="unknown argument 'huge'"):
        load_config("huge")


# --- end to end on the toy task --------------------------------------------------------------------------------


def toy_config(**changes):
    """configs/rest.py:tiny on the toy task at test scale (BC on 512 noisy demonstrations, 64 sources x 8)."""
    config = load_config("tiny")
    config.sft.train.num_steps = 200
    config.sft.data.max_length = 16  # 'letter: c' + 6 letters + EOS
    config.data.num_sources = 64
    config.data.num_eval = 64
    config.data.max_prompt_length = 16
    config.data.max_new_tokens = 8
    config.improve.sgd_steps = 30
    for key, value in changes.items():
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


@pytest.fixture(scope="module")
def toy_bc(tmp_path_factory):
    """One BC run on the toy task's D shared by the end-to-end tests: (directory holding sft/, its start eval)."""
    workdir = tmp_path_factory.mktemp("rest_bc")
    results = rest.run(toy_config(**{"grow.num_steps": 0}), str(workdir))
    return workdir, results["start"]


def start_from_bc(toy_bc, workdir) -> None:
    shutil.copytree(toy_bc[0] / "sft" / "hf_model", workdir / "sft" / "hf_model")


@pytest.mark.slow
def test_rest_raises_toy_reward_across_improve_steps_at_bounded_kl(toy_bc, tmp_path, record_diff):
    """Fig. 3 / Table 1's direction: every Improve step (τ = 0, 0.7, 0.9) raises the held-out gold reward."""
    start_from_bc(toy_bc, tmp_path)
    config = toy_config(
        **{
            "grow.num_steps": 1,
            "improve.num_steps": 3,
            "improve.thresholds": [0.0, 0.7, 0.9],
            "improve.stop_when_no_gain": False,
            "improve.threshold_above_mean": False,
        }
    )
    results = rest.run(config, str(tmp_path))
    assert results["start"] == toy_bc[1]
    rows = rest.read_grow_file(str(tmp_path / "grow_0.jsonl"))
    assert [r["origin"] for r in rows].count("grow_0") == 64 * 8 and [r["origin"] for r in rows].count(
        "original"
    ) == 512
    steps = results["steps"]
    assert [s["num_kept"] for s in steps] == [len(rest.improve_filter(rows, t)) for t in (0.0, 0.7, 0.9)]
    test_rewards = [results["start"]["test"]["gold_reward"]] + [s["test"]["gold_reward"] for s in steps]
    assert all(later > earlier for earlier, later in zip(test_rewards, test_rewards[1:])), test_rewards
    gain = record_diff("test gold reward gain over BC", test_rewards[-1] - test_rewards[0], 0.3, op=">")
    assert gain > 0.3, test_rewards
    kl = record_diff("test KL to BC after ReST (nats)", steps[-1]["test"]["kl"], 6.0)
    assert 0 < kl < 6.0
    assert [s["learning_rate"] for s in steps] == [1e-3, 5e-4, 2.5e-4]
    assert (tmp_path / "rest.md").read_text() == rest.markdown_table(results)
    assert json.loads((tmp_path / "rest.json").read_text())["steps"][-1]["test"]["gold_reward"] == test_rewards[-1]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_interrupted_run_resumes_bit_identically(toy_bc, tmp_path, monkeypatch):
    """Stopped inside Improve 0, after Grow 0 was written: the re-run reads grow_0.jsonl back without sampling,
    continues Improve 0 from its checkpoint, and grow_1.jsonl (sampled from the resumed policy), the losses and
    rest.json equal a straight run's."""
    changes = {
        "data.num_sources": 16,
        "data.num_eval": 16,
        "grow.num_samples": 4,
        "grow.num_steps": 2,
        "improve.num_steps": 1,
        "improve.thresholds": [0.5],
        "improve.sgd_steps": 6,
        "improve.stop_when_no_gain": False,
        "improve.threshold_above_mean": False,
        "train.log_every": 1,
    }
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for workdir in (straight, resumed):
        start_from_bc(toy_bc, workdir)
    expected = rest.run(toy_config(**changes), str(straight))
    grows = []
    real_grow = rest.grow
    monkeypatch.setattr(
        rest, "grow", lambda *args, **kwargs: grows.append(kwargs["origin"]) or real_grow(*args, **kwargs)
    )
    partial = rest.run(toy_config(**changes, **{"train.stop_at_step": 3}), str(resumed))
    assert not partial["finished"] and grows == ["grow_0"]
    assert not (resumed / "grow_0" / "improve_0" / "eval.json").exists()
    assert [row["step"] for row in read_metrics(str(resumed / "grow_0" / "improve_0"))] == [1, 2, 3]
    results = rest.run(toy_config(**changes), str(resumed))
    assert grows == ["grow_0", "grow_1"]  # Grow 0 read back, not re-sampled
    assert results == expected and results["finished"]
    for name in ("grow_0.jsonl", "grow_1.jsonl", "rest.json"):
        assert sha(resumed / name) == sha(straight / name), name
    for step_dir in ("grow_0/improve_0", "grow_1/improve_0"):
        losses = [[row["loss"] for row in read_metrics(str(workdir / step_dir))] for workdir in (straight, resumed)]
        assert len(losses[0]) == 6 and losses[0] == losses[1], step_dir
    assert [s["num_kept"] for s in results["steps"]] == [
        len(rest.improve_filter(rest.read_grow_file(str(straight / f"grow_{g}.jsonl")), 0.5)) for g in (0, 1)
    ]


def test_rest_improves_lora_adapters_on_the_bc_policy(toy_bc, tmp_path):
    """`config.model.lora.rank`: Improve trains adapters on the BC weights (its checkpoints hold only them)."""
    start_from_bc(toy_bc, tmp_path)
    config = toy_config(
        **{
            "grow.num_steps": 1,
            "improve.num_steps": 1,
            "improve.thresholds": [0.7],
            "improve.threshold_above_mean": False,
            "model.lora.rank": 8,
            "model.lora.alpha": 16.0,
        }
    )
    results = rest.run(config, str(tmp_path))
    step = results["steps"][0]
    assert step["test"]["gold_reward"] > results["start"]["test"]["gold_reward"] + 0.05, results
    checkpoints = tmp_path / "grow_0" / "improve_0" / "checkpoints"
    metadata = json.loads(next(checkpoints.glob("*/default/_METADATA")).read_text())
    params = [key for key in metadata["tree_metadata"] if key.startswith("('params'")]
    assert params and all("lora_" in key for key in params)
