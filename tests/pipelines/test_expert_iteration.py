"""Expert iteration on the toy task: the gold reward rises over the SFT start at bounded KL; a re-run reuses each
iteration's data file and continues an interrupted SFT from its checkpoint."""

import json

import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.data.toy import toy_reward
from rlaif_jax.pipelines.expert_iteration import read_scored_rows
from rlaif_jax.workdir import read_metrics


def ei_config(sft_model, **fields):
    config = config_defaults.load_config_file("expert_iteration", "tiny")
    config.model.name = sft_model
    config.sft_first = False
    config.expert_iteration.update(fields)
    return config


@pytest.mark.slow
def test_expert_iteration_raises_toy_gold_at_bounded_kl(sft_model, tmp_path, record_diff):
    results = pipelines.run(ei_config(sft_model, iterations=2), str(tmp_path))
    start, iterations = results["start"], results["iterations"]
    assert start["kl"] == 0.0  # the start policy against itself
    assert [row["iteration"] for row in iterations] == [1, 2]
    gain = record_diff(
        "gold after 2 iterations - SFT start", iterations[-1]["gold_reward"] - start["gold_reward"], 0.2, ">"
    )
    assert gain > 0.2, results  # measured 0.48 -> 0.83
    assert record_diff("KL to the SFT start after 2 iterations", iterations[-1]["kl"], 5.0) < 5.0
    # Iteration 2 samples from the improved policy, so its best-of-4 data score higher than iteration 1's.
    assert iterations[1]["data_reward"] > iterations[0]["data_reward"]
    for iteration in (1, 2):
        data = read_scored_rows(str(tmp_path / f"iter_{iteration}" / "data.jsonl"))
        assert len(data) == 256  # prompts_per_iteration
        assert all(row["reward"] == pytest.approx(toy_reward(row["prompt"], row["response"])) for row in data)
        assert [row["step"] for row in read_metrics(str(tmp_path / f"iter_{iteration}"))] == [8, 16, 24, 32]
    assert json.loads((tmp_path / "expert_iteration.json").read_text())["iterations"] == iterations
    assert (tmp_path / "expert_iteration.md").read_text().count("\n| ") == 1 + 3  # header, start, 2 iterations


@pytest.mark.slow
def test_rerun_reuses_the_data_file_and_resumes_the_sft(sft_model, tmp_path):
    config = ei_config(sft_model, iterations=1, steps_per_iteration=16, prompts_per_iteration=64)
    config.train.stop_at_step = 8
    results = pipelines.run(config, str(tmp_path))
    assert "iterations" not in results  # stopped inside iteration 1
    data_path = tmp_path / "iter_1" / "data.jsonl"
    rows = [json.loads(line) for line in data_path.read_text().splitlines()]
    assert len(rows) == 64
    # Plant a reward the sampler cannot produce: the re-run must train and report from this file, not a new draw.
    data_path.write_text("".join(json.dumps({**row, "reward": 0.125}) + "\n" for row in rows))
    config.train.stop_at_step = 0
    results = pipelines.run(config, str(tmp_path))
    assert results["iterations"][0]["data_reward"] == 0.125
    assert [row["step"] for row in read_metrics(str(tmp_path / "iter_1"))] == [8, 16]  # resumed at 8, no repeats
    eval_text = (tmp_path / "iter_1" / "eval.json").read_text()
    assert pipelines.run(config, str(tmp_path)) == results  # a finished run is read back as it is
    assert (tmp_path / "iter_1" / "eval.json").read_text() == eval_text


def test_data_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(
        '{"prompt": "letter: a", "response": "aaaaaa", "reward": 1.0}\n{"prompt": "letter: b", "response": "b"}\n'
    )
    with pytest.raises(ValueError, match=r"data.jsonl:2: missing or non-numeric 'reward'"):
        read_scored_rows(str(path))
    path.write_text('{"prompt": "letter: a", "reward": 1.0}\n')
    with pytest.raises(ValueError, match=r"data.jsonl:1: missing or non-string 'response'"):
        read_scored_rows(str(path))
    path.write_text('{"prompt": "letter: a", "response": "", "reward": 0.0}\n')
    assert read_scored_rows(str(path))[0]["response"] == ""  # a sample that stopped at once is kept


def test_config_sizes():
    paper = config_defaults.load_config_file("expert_iteration", "paper")
    assert (paper.expert_iteration.n, paper.expert_iteration.temperature, paper.train.batch_size) == (8, 0.7, 32)
    assert config_defaults.load_config_file("expert_iteration", "smollm2").expert_iteration.task == "sentiment"
    with pytest.raises(ValueError, match="unknown argument 'huge'"):
        config_defaults.load_config_file("expert_iteration", "huge")
