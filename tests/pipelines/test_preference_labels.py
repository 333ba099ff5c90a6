"""The preference job learns the labels it is given: hard labels orient each pair by its 'preference' column, soft
labels are DPO's cross-entropy targets, and flipping every label flips what DPO learns."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax import config_defaults, models, pipelines
from rlaif_jax.data import preferences
from rlaif_jax.losses import dpo
from rlaif_jax.models.byte_tokenizer import byte_tokenizer
from rlaif_jax.pipelines import preference


def test_hard_labels_swap_pairs_the_label_prefers_rejected_and_drop_ties():
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b", "preference": 0.9},
        {"prompt": "p", "chosen": "c", "rejected": "d", "preference": 0.2},
        {"prompt": "p", "chosen": "e", "rejected": "f", "preference": 0.5},
        {"prompt": "p", "chosen": "g", "rejected": "h"},  # no column: a human-labelled file, chosen wins
    ]
    oriented, dropped = preferences.hard_label_rows(rows)
    assert dropped == 1
    assert [(r["chosen"], r["rejected"]) for r in oriented] == [("a", "b"), ("d", "c"), ("g", "h")]
    assert oriented[1]["preference"] == pytest.approx(0.8)


def test_soft_labels_are_per_pair_cdpo_targets():
    config = config_defaults.model("tiny")
    lm = models.init_random(models.ModelConfig(**dict(config.tiny)), seed=0, tokenizer=byte_tokenizer())
    rows = [
        {"prompt": "letter: a\n", "chosen": "aaa", "rejected": "bcd", "preference": 0.7},
        {"prompt": "letter: b\n", "chosen": "bb", "rejected": "b", "preference": 0.7},
    ]
    examples = preferences.tokenize_pairs(rows, lm.tokenizer, max_length=24, use_chat_template=False)
    batch = {k: v for k, v in examples.arrays.items() if k.startswith(("chosen_", "rejected_"))}
    batch["preference"] = examples.arrays["preference"]
    # A reference that differs from the policy, so the margin h is not 0.
    batch["reference_chosen_logps"] = jnp.array([-30.0, -20.0])
    batch["reference_rejected_logps"] = jnp.array([-25.0, -28.0])
    soft, _ = dpo.dpo_loss_fn(lm.module, beta=0.5, soft_labels=True)(lm.params, batch, None, None)
    smoothed, _ = dpo.dpo_loss_fn(lm.module, beta=0.5, label_smoothing=0.3)(lm.params, batch, None, None)
    hard, _ = dpo.dpo_loss_fn(lm.module, beta=0.5)(lm.params, batch, None, None)
    np.testing.assert_allclose(float(soft), float(smoothed), rtol=1e-6)
    assert abs(float(soft) - float(hard)) > 1e-3
    batch["preference"] = jnp.array([0.7, 0.2])  # per pair: not one shared ε
    per_pair, _ = dpo.dpo_loss_fn(lm.module, beta=0.5, soft_labels=True)(lm.params, batch, None, None)
    assert abs(float(per_pair) - float(soft)) > 1e-3
    with pytest.raises(ValueError, match="soft labels need loss_type='sigmoid'"):
        dpo.dpo_loss_fn(lm.module, beta=0.5, loss_type="ipo", soft_labels=True)


def test_soft_labels_with_another_method_name_the_key(tmp_path):
    config = config_defaults.load_config_file("slic", "tiny")
    config.data.labels = "soft"
    with pytest.raises(ValueError, match="config.data.labels='soft' needs config.loss.method='dpo'"):
        pipelines.run(config, str(tmp_path))
    config.data.labels = "softish"
    with pytest.raises(ValueError, match="config.data.labels='softish'"):
        pipelines.run(config, str(tmp_path))


@pytest.mark.parametrize("job", ["reward_model", "dpo"])
def test_soft_label_jobs_refuse_a_labels_file_without_preference(job, tmp_path):
    """A soft-label RM or cDPO run on a file of human pairs (no 'preference') would train on 1.0 everywhere."""
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    config = config_defaults.load_config_file(job, "tiny")
    config.data.source, config.data.train_file = "jsonl", str(path)
    if job == "reward_model":
        config.loss.type = "soft_label"
    else:
        config.sft_first, config.data.labels = False, "soft"
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: missing column 'preference'"):
        pipelines.run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def _dpo_on_file(rows, sft_model, workdir):
    path = workdir / "pairs.jsonl"
    workdir.mkdir()
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = config_defaults.load_config_file("dpo", "tiny")
    config.sft_first = False
    config.model.name = sft_model
    config.data.source, config.data.train_file = "jsonl", str(path)
    config.eval.num_prompts = 64
    config.train.num_epochs = 2
    return pipelines.run(config, str(workdir / "run"))


def test_flipping_every_label_flips_what_dpo_learns(sft_model, tmp_path, record_diff):
    """The same toy pairs (chosen = the better letters) labelled preference 1 and, flipped, preference 0 with the
    columns untouched, as an AI labeler that preferred response b writes them."""
    rows = preferences.toy_pairwise_rows(512, seed=1, noise=0.5)
    given = _dpo_on_file(rows, sft_model, tmp_path / "given")
    flipped = _dpo_on_file([{**row, "preference": 0.0} for row in rows], sft_model, tmp_path / "flipped")
    start = given["start"]["gold_reward"]
    assert flipped["start"]["gold_reward"] == start  # same start policy and evaluation keys
    up = record_diff("gold gain, labels as given", given["end"]["gold_reward"] - start, 0.05, ">")
    down = record_diff("gold gain, every label flipped", flipped["end"]["gold_reward"] - start, -0.05, "<")
    assert up > 0.05 and down < -0.05, (given, flipped)


def test_training_arrays_carry_the_preference_only_for_soft_labels():
    config = config_defaults.load_config_file("dpo", "tiny")
    rows = [{"prompt": "letter: a\n", "chosen": "aa", "rejected": "b", "preference": 0.6}]
    assert "preference" not in preference.training_arrays(config, rows, byte_tokenizer())
    config.data.labels = "soft"
    np.testing.assert_allclose(preference.training_arrays(config, rows, byte_tokenizer())["preference"], [0.6])
