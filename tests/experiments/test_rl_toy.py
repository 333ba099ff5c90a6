"""The toy-task RL experiment (slow): every method raises the gold reward; the table is what results/ quotes."""

import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_experiment():
    spec = importlib.util.spec_from_file_location("rl_toy", os.path.join(REPO, "experiments", "rl_toy.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_method_raises_toy_gold_reward_at_bounded_kl(tmp_path, record_diff):
    """The full experiment (the table in experiments/results/rl_toy.md): REINFORCE with either baseline, RLOO, PPO,
    PPO-ptx, GRPO, Dr. GRPO, DAPO and GSPO each raise the held-out gold reward over the shared SFT start, at a
    bounded KL; the GRPO family's sampler-trainer log-prob gap stays at float error and its compile count is flat."""
    experiment = load_experiment()
    rows = experiment.run(str(tmp_path), smoke=False)
    assert [row["method"] for row in rows] == list(experiment.METHODS)
    for row in rows:
        gain = record_diff(f"gold gain, {row['method']}", row["end_gold"] - row["start_gold"], 0.3, ">")
        assert gain > 0.3, row
        assert record_diff(f"KL nats/seq, {row['method']}", row["end_kl"], 10.0) < 10.0, row
    assert len({row["start_gold"] for row in rows}) == 1  # one shared start, one evaluation
    assert experiment.to_markdown(rows).count("\n") == 2 + len(rows)
    assert json.loads((tmp_path / "reinforce" / "eval_end.json").read_text())["gold_reward"] == rows[0]["end_gold"]
    ptx = json.loads((tmp_path / "ppo_ptx" / "metrics.jsonl").read_text().splitlines()[0])
    assert ptx["ptx_loss"] > 0  # PPO-ptx did mix in the pretraining NLL
    for run_name in ("grpo", "dr_grpo", "dapo", "gspo"):  # the GRPO family on the same loop
        rows = [json.loads(line) for line in (tmp_path / run_name / "metrics.jsonl").read_text().splitlines()]
        mean_gap = max(r["sampler_gap_mean"] for r in rows)
        assert record_diff(f"{run_name}: mean |sampler - trainer log p|", mean_gap, 1e-6) <= 1e-6
        # f32 on CPU: the sampler's own log-probs equal the trainer's recomputation to float rounding (issue #13's
        # goal: <= 1e-5 for the worst single token). Measured 2026-12-07 on the 8-device CPU mesh: GRPO 5.4e-6,
        # Dr. GRPO 2.1e-6, DAPO 4.5e-6, GSPO 8.1e-6 (5.8e-5 for DAPO on 2026-12-04; experiments/results/rl_toy.md).
        # A real mismatch (temperature, positions) is >= 1e-2.
        gap = record_diff(f"{run_name}: max |sampler - trainer log p|", max(r["sampler_gap_max"] for r in rows), 1e-5)
        assert gap <= 1e-5
        assert rows[-1]["compiles"] == rows[1]["compiles"]  # fixed shapes: nothing compiles after the first iterations
    dapo = [json.loads(line) for line in (tmp_path / "dapo" / "metrics.jsonl").read_text().splitlines()]
    assert max(row["groups_dropped"] for row in dapo) > 0  # late rollouts have all-correct groups: dropped
