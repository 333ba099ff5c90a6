"""End-to-end runs of the tiny configs: resume is bit-identical, outputs land in the run directory, bad keys fail."""

import hashlib
import json
import os

import pytest

from rlaif_jax import config_defaults, config_overrides, pipelines
from rlaif_jax.workdir import read_metrics, write_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sft_config(**train):
    config = config_defaults.load_config_file("sft", "tiny")
    config.train.num_steps = 20
    config.train.log_every = 1
    config.checkpoint.every_steps = 5
    config.export_hf = True
    config.train.update(train)
    return config


def final_weights_hash(workdir) -> str:
    return hashlib.sha256((workdir / "hf_model" / "model.safetensors").read_bytes()).hexdigest()


def test_sft_resume_and_rerun_are_bit_identical(tmp_path):
    """RELIABILITY 4 and 5: 20 steps straight, the same again, and 10 + resume to 20 give the same losses and
    the same final parameters (hash of the exported weights)."""
    pipelines.run(sft_config(), str(tmp_path / "straight"))
    pipelines.run(sft_config(), str(tmp_path / "again"))
    pipelines.run(sft_config(stop_at_step=10), str(tmp_path / "resumed"))
    assert [row["step"] for row in read_metrics(str(tmp_path / "resumed"))] == list(range(1, 11))
    assert not (tmp_path / "resumed" / "hf_model").exists()
    pipelines.run(sft_config(), str(tmp_path / "resumed"))
    losses = {
        name: [row["loss"] for row in read_metrics(str(tmp_path / name))] for name in ("straight", "again", "resumed")
    }
    assert len(losses["straight"]) == 20
    assert losses["straight"] == losses["again"] == losses["resumed"]
    assert losses["straight"][-1] < losses["straight"][0]
    assert final_weights_hash(tmp_path / "straight") == final_weights_hash(tmp_path / "again")
    assert final_weights_hash(tmp_path / "straight") == final_weights_hash(tmp_path / "resumed")
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["train"]["num_steps"] == 20
    assert max(int(name) for name in os.listdir(tmp_path / "straight" / "checkpoints") if name.isdigit()) == 20
    assert os.listdir(tmp_path / "straight" / "tensorboard")


def test_generate_tiny_writes_and_resumes(tmp_path):
    config = config_defaults.load_config_file("generate", "tiny")
    config.sampling.max_new_tokens = 4
    path = pipelines.run(config, str(tmp_path))
    rows = [json.loads(line) for line in open(path)]
    assert [row["prompt_index"] for row in rows] == [0, 1, 2]
    assert all(row["num_tokens"] <= 4 for row in rows)
    pipelines.run(config, str(tmp_path))  # everything answered: nothing appended
    assert len(open(path).readlines()) == 3


def test_generate_resume_after_a_cut_batch_equals_an_uninterrupted_run(tmp_path):
    config = config_defaults.load_config_file("generate", "tiny")
    config.sampling.update(max_new_tokens=4, temperature=1.0, num_samples=2)
    config.batch_size = 2
    straight = pipelines.run(config, str(tmp_path / "straight"))
    expected = open(straight).read()
    lines = expected.splitlines(keepends=True)
    assert [json.loads(line)["prompt_index"] for line in lines] == [0, 0, 1, 1, 2, 2]
    # A kill left prompt 1 with one of its two samples and a torn line: prompt 1 is not answered.
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    (resumed_dir / "generations.jsonl").write_text("".join(lines[:3]) + lines[3][:10])
    write_config(config, str(resumed_dir))
    resumed = pipelines.run(config, str(resumed_dir))
    assert open(resumed).read() == expected  # prompt 1 redrawn from its own key, not from the batch offset


def test_generate_names_prompt_over_context(tmp_path):
    config = config_defaults.load_config_file("generate", "tiny")
    config.prompts = ["short", "x" * 600]
    with pytest.raises(ValueError, match=r"prompt 1 has \d+ tokens.*context of 512"):
        pipelines.run(config, str(tmp_path))


def test_unknown_config_key_is_named():
    argv = ["main", f"--config={REPO}/configs/sft.py:tiny", "--config.train.num_stepz=3", "--config.seed=1"]
    with pytest.raises(SystemExit, match=r"unknown config key 'train.num_stepz'.*config.train has: .*num_steps"):
        config_overrides.check_argv(argv)
    config_overrides.check_argv(["main", f"--config={REPO}/configs/sft.py:tiny", "--config.train.num_steps=3"])


def test_every_config_builds_its_sizes():
    assert config_defaults.load_config_file("sft", "paper").optimizer.learning_rate == 9.65e-6
    with pytest.raises(ValueError, match="unknown argument 'huge'"):
        config_defaults.load_config_file("sft", "huge")


def test_prompts_file_errors_name_file_and_line(tmp_path):
    from rlaif_jax.pipelines.generate import read_prompts

    good = tmp_path / "prompts.jsonl"
    good.write_text('{"prompt": "hi"}\n{"prompt": "there"}\n')
    assert read_prompts(str(good)) == ["hi", "there"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi"}\n{"text": "no prompt"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing column 'prompt'"):
        read_prompts(str(bad))
    text = tmp_path / "prompts.txt"
    text.write_text("one\n\ntwo\n")
    assert read_prompts(str(text)) == ["one", "two"]
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_prompts(str(tmp_path / "nope.txt"))


def small_rl_config(algorithm: str, **train):
    config = config_defaults.load_config_file(algorithm, "tiny")
    config.sft.train.num_steps = 20
    config.train.num_steps = 8
    config.rl.eval_prompts = 8
    config.checkpoint.every_iterations = 1
    config.train.update(train)
    return config


@pytest.mark.slow
def test_online_rl_resume_is_bit_identical(tmp_path):
    straight_results = pipelines.run(small_rl_config("ppo"), str(tmp_path / "straight"))
    pipelines.run(small_rl_config("ppo", stop_at_step=4), str(tmp_path / "resumed"))
    assert not (tmp_path / "resumed" / "eval_end.json").exists()
    resumed_results = pipelines.run(small_rl_config("ppo"), str(tmp_path / "resumed"))
    assert resumed_results["start"] == straight_results["start"]  # read back from eval_start.json
    assert resumed_results["end"] == straight_results["end"]
    assert pipelines.run(small_rl_config("ppo"), str(tmp_path / "resumed")) == straight_results  # a finished run
    keys = ("loss", "reward_mean", "kl", "clip_fraction")
    straight = [[row[k] for k in keys] for row in read_metrics(str(tmp_path / "straight"))]
    resumed = [[row[k] for k in keys] for row in read_metrics(str(tmp_path / "resumed"))]
    assert len(straight) == 4 and straight == resumed  # 2 optimizer steps per PPO iteration
    end = json.loads((tmp_path / "resumed" / "eval_end.json").read_text())
    assert end == json.loads((tmp_path / "straight" / "eval_end.json").read_text())


def test_health_alarms(caplog):
    from rlaif_jax.train.rl_loop import health_warnings

    with caplog.at_level("WARNING"):
        health_warnings({"kl": -1.5, "ratio_max": 12.0, "response_length": 30.0}, previous_length=10.0, step=7)
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "KL to the reference is -1.500 < -1" in messages
    assert "importance ratio reached 12.0 > 10" in messages
    assert "response length jumped 10.0 -> 30.0" in messages
    caplog.clear()
    with caplog.at_level("WARNING"):
        health_warnings({"kl": 0.3, "ratio_max": 1.2, "response_length": 11.0}, previous_length=10.0, step=8)
    assert not caplog.records
