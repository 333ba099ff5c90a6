"""experiments/offline_toy.py: the smoke run writes one row per method from the pipelines' own result files."""

import importlib.util
import json
import math
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_experiment(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_table_has_a_row_per_job_kind(tmp_path):
    experiment = load_experiment("offline_toy")
    # One method of each job the script summarises (every preference loss has its own pipeline test).
    methods = ("dpo", "rrhf", "best_of_n", "expert_iteration", "conditional", "rest")
    rows = experiment.run(str(tmp_path), smoke=True, methods=methods)
    assert [row["run"] for row in rows] == list(methods)
    for row in rows:
        assert all(math.isfinite(row[key]) for key in ("start_gold", "end_gold", "end_kl")), row
        assert 0.0 <= row["start_gold"] <= 1.0 and 0.0 <= row["end_gold"] <= 1.0
    by_run = {row["run"]: row for row in rows}
    dpo_end = json.loads((tmp_path / "dpo" / "eval_end.json").read_text())
    assert by_run["dpo"]["end_gold"] == dpo_end["gold_reward"] and by_run["dpo"]["end_kl"] == dpo_end["kl"]
    bon = json.loads((tmp_path / "best_of_n" / "best_of_n.json").read_text())["rows"]
    assert by_run["best_of_n"]["end_kl"] == pytest.approx(math.log(2) - 0.5)  # smoke n = 1, 2: log n - (n-1)/n
    assert by_run["best_of_n"]["end_gold"] == bon[-1]["gold_reward"]
    # Every method but ReST (its own BC start) starts from the one shared SFT policy.
    for run in ("dpo", "rrhf", "expert_iteration", "conditional"):
        assert json.loads((tmp_path / run / "config.json").read_text())["model"]["name"] == str(
            tmp_path / "sft" / "hf_model"
        )
    table = experiment.to_markdown(rows)
    assert table.count("\n") == 2 + len(rows)


def test_unknown_method_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        load_experiment("offline_toy").run(str(tmp_path), smoke=True, methods=("dpo", "nope"))
