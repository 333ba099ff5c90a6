"""Labeler alignment and position bias (evaluation/labeler.py) by hand, and experiments/labeler_alignment.py."""

import importlib.util
import json
import os

import numpy as np
import pytest

from rlaif_jax import models
from rlaif_jax.evaluation.labeler import alignment, labeler_alignment, position_bias
from rlaif_jax.feedback import templates
from rlaif_jax.feedback.labeler import label_pairs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "tests", "data", "fixtures", "labeler_pairs.jsonl")


def load_experiment():
    spec = importlib.util.spec_from_file_location(
        "labeler_alignment", os.path.join(REPO, "experiments", "labeler_alignment.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alignment_by_hand():
    assert alignment(np.array([0.9, 0.4, 0.5, 0.6])) == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    with pytest.raises(ValueError, match="non-empty"):
        alignment(np.array([]))


def test_position_bias_by_hand():
    original = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]])  # picks 1, 2, 1, 1
    swapped = np.array([[0.9, 0.1], [0.3, 0.7], [0.3, 0.7], [0.5, 0.5]])  # picks 1, 2, 2, tie
    bias = position_bias(original, swapped)
    assert bias == {
        "same_position_rate": 0.5,
        "same_first_rate": 0.25,
        "same_second_rate": 0.25,
        "first_share_of_same": 0.5,
        "num_pairs": 4,
        "num_same_position": 2,
    }


@pytest.mark.parametrize("labels_worse", [False, True])
def test_labeler_alignment_by_hand(labels_worse):
    better_first = np.array([[0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    better_second = np.array([[0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    result = labeler_alignment(
        better_first, better_second, labels_worse=labels_worse, shown_better_first=np.array([True, False, True])
    )
    if not labels_worse:  # P(better wins): first order P("1") = .8 .7 .4, second order P("2") = .4 .8 .7
        expected = {"alignment_better_first": 2 / 3, "alignment_better_second": 2 / 3, "alignment_no_swap": 2 / 3}
        expected["alignment_swap"] = 1.0  # means .6 .75 .55
    else:  # "1" names the worse response: first order P("2") = .2 .3 .6, second order P("1") = .6 .2 .3
        expected = {"alignment_better_first": 1 / 3, "alignment_better_second": 1 / 3, "alignment_no_swap": 1 / 3}
        expected["alignment_swap"] = 0.0  # means .4 .25 .45
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    # Positions picked: 1, 1, 2 (better first) and 1, 2, 2 (better second): pairs 0 and 2 keep their position.
    assert result["position_bias"] == pytest.approx(2 / 3)
    assert result["first_share_of_same"] == 0.5


def test_script_on_the_fixture_with_a_tiny_labeler(byte_lm, tmp_path, capsys):
    lm, _ = byte_lm
    model_dir = str(tmp_path / "labeler")
    models.save_hf(lm, model_dir)
    experiment = load_experiment()
    summary = experiment.main([f"--labeler={model_dir}", f"--pairs={FIXTURE}", "--template=helpful_base"])
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line)["alignment_swap"] == summary["alignment_swap"]
    assert summary["n"] == 12 and sum(task["n"] for task in summary["by_task"].values()) == 12
    # The same figures from the labeler directly: all 12 rows through one template, better as response a.
    rows = experiment.read_pairs(FIXTURE)
    labels = label_pairs(
        lm,
        "helpful_base",
        [templates.labeler_context(r["task"], r["context"]) for r in rows],
        [r["better"] for r in rows],
        [r["worse"] for r in rows],
    )
    expected = labeler_alignment(
        labels.probs_original,
        labels.probs_swapped,
        labels_worse=False,
        shown_better_first=np.arange(12) % 2 == 0,
    )
    for key in ("alignment_no_swap", "alignment_swap", "alignment_better_first", "position_bias"):
        assert summary[key] == pytest.approx(expected[key]), key
    assert summary["position_bias"] == summary["num_same_position"] / 12


def test_pairs_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(
        '{"task": "helpful", "context": "c", "better": "a", "worse": "b"}\n{"task": "poem", "context": "c", '
        '"better": "a", "worse": "b"}\n'
    )
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: task 'poem'"):
        load_experiment().read_pairs(str(bad))
    bad.write_text('{"task": "helpful", "context": "c", "better": "a"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: missing column 'worse'"):
        load_experiment().read_pairs(str(bad))
