"""The `ai_labels` job: labels equal the labeler's, the file feeds the soft-label reward model, reruns resume."""

import json

import numpy as np
import pytest

from rlaif_jax import config_defaults, pipelines, sharding
from rlaif_jax.data.preferences import read_pairwise_jsonl
from rlaif_jax.feedback.labeler import label_pairs
from rlaif_jax.models.setup import build_model


def labels_config(**labeler):
    config = config_defaults.load_config_file("rlaif_labels", "tiny")
    config.data.toy_num_pairs = 6
    config.labeler.batch_size = 4  # two chunks: 4 rows, then 2
    config.labeler.update(labeler)
    return config


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_labels_match_the_labeler_and_feed_read_pairwise_jsonl(tmp_path):
    config = labels_config()
    path = pipelines.run(config, str(tmp_path))
    assert path == str(tmp_path / "ai_labels.jsonl")
    rows = read_pairwise_jsonl(path)  # what the reward_model job reads
    assert len(rows) == 6 and [row["source_index"] for row in rows] == list(range(6))
    lm = build_model(config.model, None, sharding.normalize_rules(config.mesh.rules))
    contexts, chosen, rejected = ([row[key] for row in rows] for key in ("prompt", "chosen", "rejected"))
    expected = label_pairs(lm, "helpful_base", contexts, chosen, rejected)
    np.testing.assert_allclose([row["preference"] for row in rows], expected.preference, atol=1e-6)
    np.testing.assert_allclose([row["probs_original"] for row in rows], expected.probs_original, atol=1e-6)
    for row in rows:  # the soft label is the swap average of the stored per-order probabilities
        assert row["preference"] == pytest.approx((row["probs_original"][0] + row["probs_swapped"][1]) / 2, abs=1e-12)
        assert row["human_preference"] == 1.0 and row["template"] == "helpful_base"


def test_rerun_keeps_labelled_rows_and_labels_the_rest(tmp_path):
    path = pipelines.run(labels_config(), str(tmp_path / "full"))
    full = read_lines(path)
    partial_dir = tmp_path / "partial"
    partial_dir.mkdir()
    kept = [dict(row) for row in full[:2]]
    kept[1]["preference"] = 0.123  # a sentinel: a re-labelled row would lose it
    with open(partial_dir / "ai_labels.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in kept)
        f.write('{"prompt": "torn')  # a crash mid-line
    pipelines.run(labels_config(), str(partial_dir))
    resumed = read_lines(partial_dir / "ai_labels.jsonl")
    assert [row["label_key"] for row in resumed] == [row["label_key"] for row in full]
    assert resumed[1]["preference"] == 0.123
    np.testing.assert_allclose([r["preference"] for r in resumed[2:]], [r["preference"] for r in full[2:]], atol=1e-6)
    from rlaif_jax.rerun_guard import ConfigChangedError

    with pytest.raises(ConfigChangedError, match=r"labeler.num_shots: 0 then, 1 now"):  # same workdir: the guard
        pipelines.run(labels_config(num_shots=1), str(partial_dir))
    elsewhere = labels_config(num_shots=1)  # another workdir writing into the same labels file: the job's own check
    elsewhere.data.output_file = str(partial_dir / "ai_labels.jsonl")
    with pytest.raises(ValueError, match="other labeler settings"):
        pipelines.run(elsewhere, str(tmp_path / "elsewhere"))


def test_bad_rows_name_the_file_and_line(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "answer": "a"}\n')
    config = labels_config()
    config.data.source = "jsonl"
    config.data.input_file = str(bad)
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: needs columns 'chosen'/'rejected', 'better'/'worse'"):
        pipelines.run(config, str(tmp_path / "run"))
    bad.write_text('{"context": "p", "response_a": "a", "response_b": "b", "task": "poetry"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: column 'task' is 'poetry'"):
        pipelines.run(config, str(tmp_path / "run"))


@pytest.mark.slow
def test_soft_label_reward_model_trains_on_the_labels(tmp_path):
    """The labels file is a `reward_model` training file for loss_type soft_label (RLAIF §2.2.1)."""
    labels = labels_config()
    labels.data.toy_num_pairs = 12
    labels_path = pipelines.run(labels, str(tmp_path / "labels"))
    config = config_defaults.load_config_file("reward_model", "tiny")
    config.data.source = "jsonl"
    config.data.train_file = labels_path
    config.data.eval_fraction = 0.34
    config.loss.type = "soft_label"
    config.train.num_steps = 2
    config.train.batch_size = 8  # 8 training pairs, 4 held out; one pair per fake device
    config.export_hf = False
    results = pipelines.run(config, str(tmp_path / "rm"))
    assert results["loss_type"] == "soft_label" and results["num_train_examples"] == 8
    assert np.isfinite(results["eval_loss"])


def test_confidence_filter_keeps_the_high_confidence_summarize_comparisons(tmp_path):
    import json as json_module
    import pathlib

    from rlaif_jax.pipelines import ai_labels

    fixture = pathlib.Path(__file__).parents[1] / "data" / "fixtures" / "summarize_comparisons.jsonl"
    records = [json_module.loads(line) for line in open(fixture)]
    low = json_module.loads(json_module.dumps(records[0]))
    low["extra"]["confidence"], low["info"]["id"] = 5, "t3_low"
    unknown = json_module.loads(json_module.dumps(records[1]))
    unknown["extra"] = {"confidence": None}
    path = tmp_path / "comparisons.jsonl"
    path.write_text("".join(json_module.dumps(r) + "\n" for r in [*records, low, unknown]))
    config = config_defaults.load_config_file("rlaif_labels", "paper")
    assert tuple(config.data.confidence) == (1, 2, 8, 9)
    config.data.input_file = str(path)
    rows = ai_labels.load_rows(config.data)
    assert len(rows) == 3  # confidence 8, 9, 2 (the CNN/DM article and the 5 / null rows are out)
    config.data.confidence = ()
    assert len(ai_labels.load_rows(config.data)) == 5
    config.data.confidence = (7,)
    with pytest.raises(ValueError, match=r"no row has a confidence in config.data.confidence=\(7,\)"):
        ai_labels.load_rows(config.data)
    toy = config_defaults.load_config_file("rlaif_labels", "tiny")
    toy.data.confidence = (1, 9)
    with pytest.raises(ValueError, match=r"config.data.confidence=\(1, 9\) needs a 'confidence' column"):
        ai_labels.load_rows(toy.data)
    chain = config_defaults.load_config_file("rlaif", "paper_tldr")
    assert tuple(chain.stages.labels.data.confidence) == ()  # the RM's labels cover the whole split
