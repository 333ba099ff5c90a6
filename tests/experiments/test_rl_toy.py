"""The toy-task RL experiment: the smoke run writes its table; the full PPO run raises the gold reward (slow)."""

import importlib.util
import json
import math
import os

import pytest

from rlaif_jax import config_defaults, pipelines

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_experiment():
    spec = importlib.util.spec_from_file_location("rl_toy", os.path.join(REPO, "experiments", "rl_toy.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_table_has_every_method(tmp_path):
    experiment = load_experiment()
    rows = experiment.run(str(tmp_path), smoke=True)
    assert [row["method"] for row in rows] == list(experiment.METHODS)
    for row in rows:
        assert all(math.isfinite(row[key]) for key in ("start_gold", "end_gold", "end_kl"))
        assert 0.0 <= row["start_gold"] <= 1.0
    table = experiment.to_markdown(rows)
    assert table.count("\n") == 2 + len(rows)
    assert json.loads((tmp_path / "reinforce" / "eval_end.json").read_text())["gold_reward"] == rows[0]["end_gold"]


@pytest.mark.slow
def test_ppo_raises_toy_gold_reward_at_bounded_kl(tmp_path):
    config = config_defaults.load_config_file("ppo", "tiny")
    results = pipelines.run(config, str(tmp_path))
    assert results["start"]["kl"] == 0.0
    assert results["end"]["gold_reward"] > results["start"]["gold_reward"] + 0.25, results
    assert results["end"]["kl"] < 10.0, results
