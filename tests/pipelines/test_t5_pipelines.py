"""The T5 encoder-decoder through the jobs: SFT trains it and exports a checkpoint transformers reads; ReST
(`configs/rest.py:tiny_t5`) grows, filters and improves it on the synthetic translation task and runs on the IWSLT
fixture."""

import os
import shutil

import numpy as np
import torch
import transformers

from rlaif_jax import config_defaults, models, pipelines
from rlaif_jax.pipelines import rest
from rlaif_jax.workdir import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IWSLT = os.path.join(REPO, "tests", "data", "fixtures", "iwslt2017_de_en.jsonl")


def load_rest_config(arg: str):
    return config_defaults.load_config_file("rest", arg)


def test_sft_trains_a_t5_and_exports_what_transformers_reads(tmp_path):
    config = config_defaults.load_config_file("sft", "tiny")
    config.model.name = "tiny_t5"
    config.model.tiny_t5 = dict(config_defaults.TINY_T5)
    config.train.num_steps = 60
    config.train.log_every = 10
    config.export_hf = True
    pipelines.run(config, str(tmp_path))
    losses = [row["loss"] for row in read_metrics(str(tmp_path))]
    assert losses[-1] < losses[0] - 1.0, losses
    lm = models.load(str(tmp_path / "hf_model"))
    hf_model = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / "hf_model")).float().eval()
    source = np.asarray([lm.tokenizer("letter: c")["input_ids"]], np.int32)
    decoder = np.asarray([[lm.config.decoder_start_token_id, 99, 100]], np.int32)
    ours = np.asarray(lm.module.apply({"params": lm.params}, source, decoder))
    with torch.no_grad():
        theirs = hf_model(input_ids=torch.as_tensor(source), decoder_input_ids=torch.as_tensor(decoder)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_rest_improves_a_t5_policy_on_synthetic_translation(tmp_path, record_diff):
    config = load_rest_config("tiny_t5")
    config.grow.num_steps = 1
    config.improve.num_steps = 2
    config.improve.stop_when_no_gain = False
    results = rest.run(config, str(tmp_path))
    assert results["finished"]
    steps = [step for step in results["steps"] if "skipped" not in step]
    assert steps, results["steps"]
    start = results["start"]["test"]["gold_reward"]
    gain = record_diff(
        "T5 ReST: test chrF gain over BC", max(s["test"]["gold_reward"] for s in steps) - start, 0.05, ">"
    )
    assert gain > 0.05
    assert all(s["test"]["kl"] > 0 for s in steps)
    assert (tmp_path / "grow_0" / "improve_1" / "metrics.jsonl").exists()  # Improve trained the T5


def test_rest_runs_a_t5_policy_on_the_iwslt_fixture(tmp_path):
    corpus = tmp_path / "iwslt"
    corpus.mkdir()
    for split in ("train", "validation", "test"):
        shutil.copy(IWSLT, corpus / f"{split}.jsonl")
    config = load_rest_config("tiny_t5")
    config.task = "corpus"
    config.data.corpus = str(corpus)
    config.data.prompt_template = "{source}"
    config.data.num_original = 3
    config.data.max_prompt_length = 96
    config.data.max_new_tokens = 24
    config.sft.data.max_length = 96
    config.sft.train.num_steps = 20
    config.train.batch_size = 8
    config.grow.num_steps = 1
    config.grow.num_samples = 2
    config.improve.num_steps = 1
    config.improve.thresholds = [0.0]
    config.improve.threshold_above_mean = False
    config.improve.sgd_steps = 4
    results = rest.run(config, str(tmp_path / "run"))
    rows = rest.read_grow_file(str(tmp_path / "run" / "grow_0.jsonl"))
    assert len(rows) == 3 * 2 + 3 and all(0.0 <= row["reward"] <= 1.0 for row in rows)
    assert results["finished"] and "test" in results["steps"][0]
