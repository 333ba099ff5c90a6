"""experiments/frontier.py: the smoke run gives one DPO and one PPO point on the `reviews` task, a table and a PNG."""

import importlib.util
import json
import math
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_smoke_frontier_writes_points_table_and_plot(tmp_path):
    spec = importlib.util.spec_from_file_location("frontier", os.path.join(REPO, "experiments", "frontier.py"))
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    rows = experiment.run(str(tmp_path), smoke=True)
    assert [(row["method"], row["value"]) for row in rows] == [
        ("DPO", experiment.DPO_BETAS[0]),
        ("PPO", experiment.PPO_KL_COEFS[0]),
    ]
    for row in rows:
        assert all(math.isfinite(row[key]) for key in ("start_reward", "reward", "kl"))
        assert -1.0 <= row["reward"] <= 1.0
    dpo_config = json.loads((tmp_path / f"dpo_beta{rows[0]['value']}" / "config.json").read_text())
    assert dpo_config["loss"]["beta"] == rows[0]["value"] and dpo_config["data"]["task"] == "reviews"
    ppo_config = json.loads((tmp_path / f"ppo_kl{rows[1]['value']}" / "config.json").read_text())
    assert ppo_config["rl"]["kl_coef"] == rows[1]["value"] and ppo_config["rl"]["reward"] == "sentiment"
    experiment.plot(rows, str(tmp_path / "frontier.png"))
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert experiment.to_markdown(rows).count("\n") == 2 + len(rows)
