"""Every `paper` config of the online-RL family loads, names a paper task, and runs its first iteration (rollout,
targets, PPO-ptx rows, one update, both evaluations) with the paper's algorithm settings on a stand-in: the tiny
random-init model, local copies of the task's data, a few prompts and tokens, and VADER in place of the reward
model whose path the paper config leaves to the user. The paper chains (rlaif, d_rlaif, instructgpt, rlcd) run
every stage that way."""

import json
import math
import os

import pytest

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.train import rl_loop
from rlaif_jax.workdir import read_metrics

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "fixtures")
PAPER_TASKS = ("tldr", "hh_rlhf")


def hh_directory(root) -> str:
    """DIR/{helpful,harmless}-base/{train,test}.jsonl from the HH fixture (the hub's layout)."""
    lines = open(os.path.join(FIXTURES, "hh_rlhf.jsonl")).read().splitlines(keepends=True)
    for subset in ("helpful-base", "harmless-base"):
        (root / subset).mkdir(parents=True, exist_ok=True)
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
    if rl.ptx_coef > 0:
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("The cat sat on the mat.\n\nA second document, a little longer than the first one.")
        rl.ptx_data.file = str(corpus)
    rl.max_prompt_length, rl.max_new_tokens, rl.eval_prompts = 256, 4, 2
    rl.prompts_per_rollout = 8  # the tests' 8 CPU devices split each minibatch
    rl.minibatch_size = 8 * rl_loop.samples_per_prompt(rl)


@pytest.mark.parametrize("name", ["ppo", "reinforce", "rloo"])  # d_rlaif.py:paper: its own chain test below
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
    assert (config.task.name, config.task.data_dir) == ("hh_rlhf", "harmless-base")
    assert list(config.chain.order) == ["pairs", "rm", "rl"]  # no programmatic judge: no agreement stage
    for name in config.chain.order:
        scalar_head = config.stages[name].model.scalar_head
        config.stages[name].model = config_defaults.model("tiny")
        config.stages[name].model.scalar_head = scalar_head
    config.task.train_file = hh_directory(tmp_path / "hh")
    settings = config.rlcd
    settings.num_pairs, settings.max_new_tokens, settings.max_prompt_length, settings.batch_size = 16, 4, 256, 32
    settings.postprocess = "chat"  # a random-init model never writes the newline the 'dialogue' filter requires
    rm = config.stages.rm
    rm.data.max_length, rm.data.eval_fraction = 300, 0.25
    rm.train.num_steps, rm.train.batch_size = 1, 8
    rl = config.stages.rl.rl
    shrink_rl(rl, tmp_path)
    rl.reward = "reward_model:@rm"  # shrink_rl's stand-in judge is for configs that leave the RM path to the user
    config.stages.rl.train.num_steps = rl.epochs
    results = pipelines.run(config, str(tmp_path / "run"))

    rl_config = json.load(open(tmp_path / "run" / "rl" / "config.json"))
    assert rl_config["rl"]["prompts"]["task"] == "hh_rlhf"
    assert rl_config["rl"]["prompts"]["data_dir"] == "harmless-base"
    assert results["rl"]["end"]["judge"].startswith("trained-on reward reward_model:")


def tiny_model(name: str = "tiny", context: int = 512):
    """The stand-in model block: the tiny byte model (random init when `name` is 'tiny', else a saved one)."""
    model = config_defaults.model("tiny")
    model.name, model.scan_layers = name, False
    model.tiny.max_position_embeddings = context
    return model


# RLAIF §4.1's labeler prompt per task: Table 2 (TL;DR), Table 21 (helpful), Table 22 (harmless).
PAPER_LABELER = {
    "tldr": ["summarize_detailed", 0, True],
    "helpful": ["helpful_base", 0, True],
    "harmless": ["harmless_base", 2, False],
}


def one_device_chain(config) -> None:
    """Every stage of a chain on one device: 8 fake CPU devices on 2 cores double the cost (2-core CI)."""
    for name in config.chain.order:
        config.stages[name].mesh.num_devices = 1


def shrink_tldr_sft(sft) -> None:
    """The TL;DR SFT stage on the tiny model, the fixture's posts, one step."""
    sft.model = tiny_model()
    sft.data.dataset_path = os.path.join(FIXTURES, "tldr_sft.jsonl")
    sft.data.max_length = 256
    sft.train.num_steps, sft.train.batch_size = 1, 8


def shrink_win_rate(win, rl, policy: str, context: int) -> None:
    """Stand-in policies (the chain's RL result against `policy`), a tiny AI judge of `context` bytes, the RL
    stage's prompts, and a few short answers."""
    win.policy_a.model, win.policy_b.model = tiny_model("@rl/hf_model"), tiny_model(policy)
    win.judge.model = tiny_model(context=context)
    win.prompts = rl.rl.prompts.copy_and_resolve_references()
    win.num_prompts, win.max_new_tokens, win.max_prompt_length, win.batch_size = 2, 4, 256, 8
    win.eval.num_resamples = win.eval.lc_resamples = 20


def shrink_rlaif_chain(config, task: str, tmp_path) -> None:
    """Stand-in sizes, data and models for a `rlaif.py:paper_*` chain; every algorithmic setting is kept."""
    stages = config.stages
    one_device_chain(config)
    hh = None if task == "tldr" else hh_directory(tmp_path / "hh")
    policy = "@sft/hf_model" if task == "tldr" else "tiny"
    if task == "tldr":
        shrink_tldr_sft(stages.sft)
    labels = stages.labels
    context = 4096 if task == "tldr" else 2048  # labeler prompts: ~2.6k bytes (Detailed + CoT), ~1.2k (2-shot)
    labels.model = tiny_model(context=context)
    labels.data.input_file = os.path.join(FIXTURES, "summarize_comparisons.jsonl") if task == "tldr" else hh
    labels.labeler.cot_max_new_tokens = 4
    rm = stages.rm
    rm.model = tiny_model(policy)
    rm.data.eval_file = labels.data.input_file  # held-out human labels: the fixture's own
    rm.data.max_length = 256
    rm.train.batch_size = 8
    rl = stages.rl
    rl.model = tiny_model(policy)
    shrink_rl(rl.rl, tmp_path)
    rl.rl.reward = "reward_model:@rm"  # the chain's own distilled RM (shrink_rl swaps a path-less one for VADER)
    rl.train.num_steps = rl.rl.epochs  # one iteration
    shrink_win_rate(stages.win_rate_ai, rl, policy, context)


@pytest.mark.parametrize("arg", ["paper_tldr", "paper_helpful", "paper_harmless"])
def test_rlaif_paper_chain_runs_every_stage_on_a_stand_in(arg, tmp_path):
    config = config_defaults.load_config_file("rlaif", arg)
    task = arg.removeprefix("paper_")
    stages = config.stages
    assert stages.rl.rl.prompts.task == ("tldr" if task == "tldr" else "hh_rlhf")
    assert stages.labels.data.source == ("summarize_from_feedback" if task == "tldr" else "hh_rlhf")
    assert stages.rm.loss.type == "soft_label" and stages.rm.data.eval_source == stages.labels.data.source
    assert (stages.rl.rl.algorithm, stages.rl.rl.kl_coef, stages.rl.rl.temperature) == ("reinforce", 0.05, 0.9)
    config.paths.labeler = "/models/palm2-l"  # one key sets the labeler of the labels stage and of the judge
    assert stages.labels.model.name == stages.win_rate_ai.judge.model.name == "/models/palm2-l"
    paper = config.copy_and_resolve_references()
    shrink_rlaif_chain(config, task, tmp_path)
    workdir = tmp_path / "run"
    results = pipelines.run(config, str(workdir))

    assert list(results) == list(config.chain.order)
    for name in config.chain.order:  # each stage ran with the paper's algorithm settings
        effective = json.load(open(workdir / name / "stage_done.json"))["config"]
        assert effective["job"] == paper.stages[name].job
    labels = [json.loads(line) for line in open(workdir / "labels" / "ai_labels.jsonl")]
    assert labels and all(row["human_preference"] is not None for row in labels)  # alignment is measurable
    labeler = json.load(open(workdir / "labels" / "stage_done.json"))["config"]["labeler"]
    assert [labeler[k] for k in ("template", "num_shots", "cot")] == PAPER_LABELER[task]
    assert math.isfinite(results["rm"]["eval_accuracy"])  # on the dataset's human labels
    assert results["rl"]["end"]["judge"].startswith("trained-on reward reward_model:")
    assert results["win_rate_ai"]["judge"].startswith("ai:")
    report = (workdir / "report.md").read_text()
    assert "win rate" in report
    if task == "harmless":
        rates = results["win_rate_ai"]["harmless_rate"]
        assert set(rates) == {"RLAIF", "SFT"} and all(0 <= r["harmless_rate"] <= 1 for r in rates.values())
        assert "harmless rate RLAIF" in report


def test_instructgpt_paper_chain_loads_and_builds_its_first_ptx_batch():
    from rlaif_jax import chain
    from rlaif_jax.data.pretraining import SAMPLE_CORPUS
    from rlaif_jax.models.byte_tokenizer import byte_tokenizer
    from rlaif_jax.pipelines import online_rl

    config = config_defaults.load_config_file("instructgpt", "paper")
    chain.check_chain(config)
    assert list(config.chain.order) == ["sft", "rm", "rl", "win_rate"]
    rl = config.stages.rl.rl
    assert rl.prompts.task in PAPER_TASKS and config.stages.rm.loss.type == "ranking"
    assert (rl.kl_coef, rl.ptx_coef, rl.value_learning_rate, rl.value_init) == (0.02, 27.8, 9e-6, "@rm/hf_model")
    config.paths.ptx_corpus = SAMPLE_CORPUS  # one key reaches the RL stage
    assert rl.ptx_data.file == SAMPLE_CORPUS

    batch_fn = online_rl.ptx_batches(rl, byte_tokenizer(), seed=0)
    rollout = rl.prompts_per_rollout * rl_loop.samples_per_prompt(rl)
    batch = batch_fn(rollout, 0)  # the rows the first PPO-ptx iteration mixes in
    length = rl.max_prompt_length + rl.max_new_tokens
    assert batch["ptx_tokens"].shape == batch["ptx_loss_mask"].shape == (rollout, length)
    assert batch["ptx_loss_mask"].sum(axis=1).min() > 0  # every row carries next-token targets
    first = batch["ptx_tokens"][0][batch["ptx_attention_mask"][0] > 0]
    text = byte_tokenizer().decode([int(t) for t in first if t < 256])
    corpus = open(SAMPLE_CORPUS, encoding="utf-8").read()
    assert text[:40] in corpus  # pretraining text, not the task's prompts


def test_d_rlaif_paper_chain_runs_every_stage_on_a_stand_in(tmp_path):
    """d_rlaif.py:paper (§4.3): SFT on TL;DR, REINFORCE on the labeler's App. D scores, the AI judge's win rate."""
    config = config_defaults.load_config_file("d_rlaif", "paper")
    assert list(config.chain.order) == ["sft", "rl", "win_rate_ai"]
    config.paths.labeler = "tiny"  # one key sets the scorer of the RL stage
    stages = config.stages
    assert stages.rl.rl.reward == "d_rlaif:summarize:tiny" and stages.rl.rl.prompts.task == "tldr"
    paper = config.copy_and_resolve_references()
    one_device_chain(config)
    shrink_tldr_sft(stages.sft)
    rl = stages.rl
    rl.model = tiny_model("@sft/hf_model")
    shrink_rl(rl.rl, tmp_path)
    rl.train.num_steps = rl.rl.epochs  # one iteration
    shrink_win_rate(stages.win_rate_ai, rl, "@sft/hf_model", 4096)
    results = pipelines.run(config, str(tmp_path / "run"))

    assert list(results) == ["sft", "rl", "win_rate_ai"]
    rl_run = json.load(open(tmp_path / "run" / "rl" / "stage_done.json"))["config"]["rl"]
    for key in ("algorithm", "kl_coef", "temperature", "baseline", "reward"):
        assert rl_run[key] == paper.stages.rl.rl[key]
    rewards = [row["reward_mean"] for row in read_metrics(str(tmp_path / "run" / "rl"))]
    assert len(rewards) == 1 and -1.0 <= rewards[0] <= 1.0  # d-RLAIF scores, mapped to [-1, 1]
    assert results["win_rate_ai"]["judge"].startswith("ai:")
    assert "d-RLAIF vs SFT" in (tmp_path / "run" / "report.md").read_text()


def test_instructgpt_paper_chain_runs_every_stage_on_a_stand_in(tmp_path):
    """instructgpt.py:paper (§3.5, App. C): SFT on demonstrations, the K-way ranking RM (its demonstrations score
    mean 0), PPO-ptx from the RM's value function on HH prompts, and the AI judge's win rate, each stage with the
    paper's algorithm settings on the tiny stand-in."""
    config = config_defaults.load_config_file("instructgpt", "paper")
    demos, rankings = tmp_path / "demos.jsonl", tmp_path / "rankings.jsonl"
    prompts = [f"Human: name a colour number {i}.\n\nAssistant:" for i in range(8)]
    demos.write_text("".join(json.dumps({"prompt": p, "response": " Blue."}) + "\n" for p in prompts))
    ranked = [" Blue, a calm colour.", " Blue.", " I do not know.", " no"]  # K = 4, best first
    rankings.write_text("".join(json.dumps({"prompt": p, "responses": ranked}) + "\n" for p in prompts))
    corpus = tmp_path / "corpus.txt"  # written by shrink_rl, as for every PPO-ptx stand-in
    paths = config.paths
    paths.policy, paths.rm_base, paths.judge = "tiny", "tiny", "tiny"
    paths.demonstrations, paths.rankings, paths.ptx_corpus = str(demos), str(rankings), str(corpus)
    paper = config.copy_and_resolve_references()
    config = paper.copy_and_resolve_references()  # the paths are in place: shrink each stage on its own
    one_device_chain(config)
    stages = config.stages
    stages.sft.model = tiny_model()
    stages.sft.data.max_length = 64
    stages.sft.train.num_steps, stages.sft.train.batch_size = 1, 8
    stages.rm.model = tiny_model()
    stages.rm.model.scalar_head = True
    stages.rm.data.max_length, stages.rm.data.eval_fraction = 64, 0.25
    stages.rm.train.batch_size = 2  # ranked prompts per step
    rl = stages.rl
    rl.model = tiny_model("@sft/hf_model")
    shrink_rl(rl.rl, tmp_path)
    rl.rl.reward = "reward_model:@rm"
    assert rl.rl.ptx_data.file == str(corpus) and corpus.exists()
    rl.train.num_steps = rl.rl.epochs
    shrink_win_rate(stages.win_rate, rl, "@sft/hf_model", 2048)
    results = pipelines.run(config, str(tmp_path / "run"))

    assert list(results) == ["sft", "rm", "rl", "win_rate"]
    done = {name: json.load(open(tmp_path / "run" / name / "stage_done.json"))["config"] for name in results}
    assert done["rm"]["loss"]["type"] == "ranking"
    for key in ("algorithm", "kl_coef", "ptx_coef", "clip_ratio", "value_learning_rate"):
        assert done["rl"]["rl"][key] == paper.stages.rl.rl[key]
    assert done["rl"]["rl"]["value_init"] == str(tmp_path / "run" / "rm" / "hf_model")  # @rm/hf_model, resolved
    rows = read_metrics(str(tmp_path / "run" / "rl"))
    assert len(rows) == 1 and rows[0]["ptx_loss"] > 0  # PPO-ptx: the corpus NLL is in the first update
    assert math.isfinite(results["rm"]["eval_accuracy"])
    assert results["win_rate"]["judge"].startswith("ai:")
