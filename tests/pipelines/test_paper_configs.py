"""Every `paper` config of the online-RL family loads, names a paper task, and runs its first iteration (rollout,
targets, PPO-ptx rows, one update, both evaluations) with the paper's algorithm settings on a stand-in: the tiny
random-init model, local copies of the task's data, a few prompts and tokens, and VADER in place of the reward
model whose path the paper config leaves to the user."""

import json
import math
import os

import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.train import rl_loop

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "fixtures")
PAPER_TASKS = ("tldr", "hh_rlhf")


def hh_directory(root) -> str:
    """DIR/{helpful,harmless}-base/{train,test}.jsonl from the HH fixture (the hub's layout)."""
    lines = open(os.path.join(FIXTURES, "hh_rlhf.jsonl")).read().splitlines(keepends=True)
    for subset in ("helpful-base", "harmless-base"):
        (root / subset).mkdir(parents=True)
        (root / subset / "train.jsonl").write_text("".join(lines))
        (root / subset / "test.jsonl").write_text(lines[0])
    return str(root)


def local_data(source, tmp_path) -> None:
    """Points a paper prompt source at a local copy of its dataset."""
    if source.task == "tldr":
        source.train_file = os.path.join(FIXTURES, "tldr_sft.jsonl")
        source.eval_fraction = 1 / 3
    elif source.task == "hh_rlhf":
        source.train_file = hh_directory(tmp_path / "hh")


def shrink_rl(rl, tmp_path) -> None:
    """The stand-in sizes; every algorithmic setting (β, γ, clip, temperature, baseline, ptx_coef, ...) is kept."""
    local_data(rl.prompts, tmp_path)
    if rl.reward.startswith("reward_model:"):
        rl.reward = "sentiment"
    elif rl.reward.endswith(":"):
        rl.reward += "tiny"  # d_rlaif:summarize:MODEL with the random-init labeler
    if rl.ptx_coef > 0:
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("The cat sat on the mat.\n\nA second document, a little longer than the first one.")
        rl.ptx_data.file = str(corpus)
    rl.max_prompt_length, rl.max_new_tokens, rl.eval_prompts = 256, 4, 2
    rl.prompts_per_rollout = 8  # the tests' 8 CPU devices split each minibatch
    rl.minibatch_size = 8 * rl_loop.samples_per_prompt(rl)


@pytest.mark.parametrize("name", ["ppo", "reinforce", "rloo", "d_rlaif"])
def test_paper_config_runs_its_first_iteration_on_a_stand_in(name, tmp_path):
    config = config_defaults.load_config_file(name, "paper")
    assert config.rl.prompts.task in PAPER_TASKS
    assert config.rl.gold_reward == ""  # no programmatic judge for TL;DR / HH: evaluated by the trained reward
    paper_rl = config.rl.copy_and_resolve_references()
    config.model = config_defaults.model("tiny")
    shrink_rl(config.rl, tmp_path)
    config.train.num_steps = config.rl.epochs  # one iteration
    results = pipelines.run(config, str(tmp_path / "run"))

    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert len(rows) == 1 and math.isfinite(rows[0]["loss"])
    assert results["end"]["judge"].startswith("trained-on reward")
    assert math.isfinite(results["end"]["gold_reward"])
    for key in ("kl_coef", "temperature", "baseline", "ptx_coef", "clip_ratio", "algorithm"):
        assert config.rl[key] == paper_rl[key]
    if paper_rl.ptx_coef > 0:  # PPO-ptx: the first batch carries pretraining rows
        assert rows[0]["ptx_loss"] > 0


def test_rlcd_paper_runs_every_stage_on_hh_prompts_on_a_stand_in(tmp_path):
    config = config_defaults.load_config_file("rlcd", "paper")
    assert (config.task.name, config.task.data_dir, config.run_ppo) == ("hh_rlhf", "harmless-base", True)
    config.model = config_defaults.model("tiny")
    config.task.train_file = hh_directory(tmp_path / "hh")
    settings = config.rlcd
    settings.num_pairs, settings.max_new_tokens, settings.max_prompt_length, settings.batch_size = 16, 4, 256, 32
    settings.postprocess = "chat"  # a random-init model never writes the newline the 'dialogue' filter requires
    config.reward_model.data.max_length = 300
    config.reward_model.data.eval_fraction = 0.25
    config.reward_model.train.num_steps, config.reward_model.train.batch_size = 1, 8
    config.ppo.rl.prompts = config_defaults.prompts("toy")  # replaced by the pipeline with config.task's HH prompts
    shrink_rl(config.ppo.rl, tmp_path)
    config.ppo.train.num_steps = config.ppo.rl.epochs
    results = pipelines.run(config, str(tmp_path / "run"))

    ppo_config = json.load(open(tmp_path / "run" / "ppo" / "config.json"))
    assert ppo_config["rl"]["prompts"]["task"] == "hh_rlhf"
    assert ppo_config["rl"]["prompts"]["data_dir"] == "harmless-base"
    assert results["ppo"]["end"]["judge"].startswith("trained-on reward reward_model:")
