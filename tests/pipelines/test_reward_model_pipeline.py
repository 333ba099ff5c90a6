"""The reward_model job on the tiny config: resume is bit-identical; reward_model.json and hf_model agree."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax import models, pipelines
from rlaif_jax.config_defaults import load_config_file as load_config
from rlaif_jax.data import preferences
from rlaif_jax.losses.reward_model import pairwise_accuracy, sequence_rewards
from rlaif_jax.workdir import read_metrics


def rm_config(**train):
    config = load_config("reward_model", "tiny")
    config.train.num_steps = 12
    config.train.log_every = 1
    config.checkpoint.every_steps = 3
    config.data.toy_num_pairs = 128
    config.data.toy_eval_pairs = 24  # not a multiple of eval_batch_size: the last scoring batch is padded
    config.train.update(train)
    return config


def test_reward_model_resume_is_bit_identical(tmp_path):
    straight_dir, resumed_dir = str(tmp_path / "straight"), str(tmp_path / "resumed")
    pipelines.run(rm_config(), straight_dir)
    pipelines.run(rm_config(stop_at_step=6), resumed_dir)
    assert [row["step"] for row in read_metrics(resumed_dir)] == list(range(1, 7))
    assert not os.path.exists(os.path.join(resumed_dir, "reward_model.json"))  # written only at the end
    pipelines.run(rm_config(), resumed_dir)
    straight = [(row["loss"], row["accuracy"], row["reward_margin"]) for row in read_metrics(straight_dir)]
    resumed = [(row["loss"], row["accuracy"], row["reward_margin"]) for row in read_metrics(resumed_dir)]
    assert len(straight) == 12 and straight == resumed
    assert straight[-1][0] < straight[0][0]
    summary = json.loads((tmp_path / "straight" / "reward_model.json").read_text())
    assert summary == json.loads((tmp_path / "resumed" / "reward_model.json").read_text())
    assert (summary["num_eval_pairs"], summary["num_bias_examples"], summary["step"]) == (24, 128, 12)
    assert summary["bias_source"] == "chosen training responses"
    check_hf_model_gives_the_same_rewards(rm_config(), straight_dir, summary)


def check_hf_model_gives_the_same_rewards(config, workdir: str, summary: dict) -> None:
    """WORKDIR/hf_model, reloaded with its scalar head, reproduces the bias and held-out accuracy of the run."""
    lm = models.load(os.path.join(workdir, "hf_model"), scalar_head=True)
    assert float(jnp.abs(lm.params["scalar_head"]["kernel"]).sum()) > 0  # trained, not the zero init
    data = config.data
    kwargs = dict(max_length=data.max_length, use_chat_template=data.use_chat_template)
    rewards = jax.jit(lambda tokens, mask: sequence_rewards(lm.module, lm.params, tokens, mask))

    train = preferences.tokenize_pairs(
        preferences.toy_pairwise_rows(data.toy_num_pairs, seed=data.seed, noise=data.toy_noise), lm.tokenizer, **kwargs
    )
    chosen = rewards(train.arrays["chosen_tokens"], train.arrays["chosen_attention_mask"])
    np.testing.assert_allclose(float(jnp.mean(chosen)), summary["bias"], rtol=1e-5, atol=1e-6)

    held_out = preferences.toy_pairwise_rows(data.toy_eval_pairs, seed=data.seed + 10_000, noise=data.toy_noise)
    held_out = preferences.tokenize_pairs(held_out, lm.tokenizer, **kwargs).arrays
    accuracy = pairwise_accuracy(
        rewards(held_out["chosen_tokens"], held_out["chosen_attention_mask"]),
        rewards(held_out["rejected_tokens"], held_out["rejected_attention_mask"]),
    )
    assert float(jnp.mean(accuracy)) == summary["eval_accuracy"]


def test_ranking_run_on_jsonl_with_demonstrations(tmp_path):
    rows = preferences.toy_ranked_rows(40, seed=0, noise=0.5, num_responses=3)
    rows[0]["responses"] = rows[0]["responses"][:2]  # variable K
    train_file, demos_file = tmp_path / "ranked.jsonl", tmp_path / "demos.jsonl"
    train_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    demos_file.write_text(
        "".join(json.dumps({"prompt": r["prompt"], "response": r["responses"][0]}) + "\n" for r in rows[:5])
    )
    config = rm_config(num_steps=4, batch_size=8, eval_batch_size=8)
    config.loss.type = "ranking"
    config.data.source = "jsonl"
    config.data.train_file = str(train_file)
    config.data.demonstrations_file = str(demos_file)
    config.data.eval_fraction = 0.25
    config.export_hf = False
    results = pipelines.run(config, str(tmp_path / "run"))
    assert results["loss_type"] == "ranking" and results["num_train_examples"] == 30
    assert results["num_eval_examples"] == 10 and results["num_eval_pairs"] in (28, 30)  # 3 pairs per prompt, or 1
    assert results["num_bias_examples"] == 5 and results["bias_source"].startswith("demonstrations ")
    assert np.isfinite(results["bias"]) and 0.0 <= results["eval_accuracy"] <= 1.0
    assert not os.path.exists(tmp_path / "run" / "hf_model")


def test_reward_model_config_sizes():
    paper = load_config("reward_model", "paper")
    assert (paper.optimizer.learning_rate, paper.optimizer.final_lr_fraction) == (9e-6, 0.1)
    assert (paper.train.batch_size, paper.train.num_epochs, paper.train.num_steps) == (64, 1, 0)
    assert paper.loss.type == "ranking" and paper.model.scalar_head
    assert load_config("reward_model", "smollm2").model.name == "smollm2-135m-instruct"
    with pytest.raises(ValueError, match="unknown argument 'huge'"):
        load_config("reward_model", "huge")
