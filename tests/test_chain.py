"""The chain runner (rlaif_jax/chain.py): references checked before anything runs, stages skipped when done and
resumed when interrupted, a changed stage refused; and configs/rlaif.py:tiny end to end (slow)."""

import json
import os
import time

import ml_collections
import pytest

from rlaif_jax import chain, config_defaults, pipelines
from rlaif_jax.rerun_guard import ConfigChangedError


def two_stage_config(**rl_overrides) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.job = "chain"
    config.chain = ml_collections.ConfigDict(dict(order=("sft", "rl"), title="test chain"))
    config.stages = ml_collections.ConfigDict()
    config.stages.sft = ml_collections.ConfigDict(dict(job="sft", steps=3))
    config.stages.rl = ml_collections.ConfigDict(
        dict(job="online_rl", model=dict(name="@sft/hf_model"), rl=dict(reward="reward_model:@sft/hf_model"))
    )
    config.stages.rl.update(rl_overrides)
    return config


class FakeJobs:
    """Records each call; `fail_on` raises once for that stage (an interrupted run)."""

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = [], fail_on

    def __call__(self, stage_config, workdir):
        name = os.path.basename(workdir)
        self.calls.append((name, stage_config))
        if name == self.fail_on:
            self.fail_on = None
            raise KeyboardInterrupt("preempted")
        os.makedirs(workdir, exist_ok=True)
        return {"loss": 0.5} if stage_config.job == "sft" else {"start": {"gold_reward": 0.1}, "end": {"kl": 1.0}}


def test_bad_chains_are_named_before_anything_runs(tmp_path):
    cases = [
        (dict(order=("sft", "rl", "eval")), "config.chain.order names stage 'eval'"),
        (dict(order=("sft",)), r"config.stages.rl is not in config.chain.order"),
    ]
    for chain_overrides, message in cases:
        config = two_stage_config()
        config.chain.update(chain_overrides)
        with pytest.raises(ValueError, match=message):
            chain.check_chain(config)
    config = two_stage_config()
    config.chain.order = ("rl", "sft")
    with pytest.raises(ValueError, match=r"config.stages.rl.model.name names @sft, which is not a stage before 'rl'"):
        chain.check_chain(config)
    config = two_stage_config(model=dict(name="@sft/checkpoints/7"))
    with pytest.raises(ValueError, match=r"config.stages.rl.model.name names @sft/checkpoints/7, but stage 'sft'"):
        chain.check_chain(config)
    config = two_stage_config()
    config.stages.rl.job = "onlinerl"
    with pytest.raises(ValueError, match=r"config.stages.rl.job='onlinerl'"):
        chain.check_chain(config)
    jobs = FakeJobs()
    with pytest.raises(ValueError):
        chain.run_chain(config, str(tmp_path), run_job=jobs)
    assert jobs.calls == [] and not os.listdir(tmp_path)


def test_references_become_paths_under_the_workdir():
    resolved = chain.resolve(two_stage_config().stages.rl, "/w")
    assert resolved.model.name == "/w/sft/hf_model"
    assert resolved.rl.reward == "reward_model:/w/sft/hf_model"
    assert chain.resolve(ml_collections.ConfigDict(dict(job="x", text="an e-mail a@b")), "/w").text == "an e-mail a@b"


def test_done_stages_are_skipped_interrupted_ones_resumed_and_changed_ones_refused(tmp_path, capsys):
    workdir = str(tmp_path)
    jobs = FakeJobs(fail_on="rl")
    with pytest.raises(KeyboardInterrupt):
        chain.run_chain(two_stage_config(), workdir, run_job=jobs)
    assert [name for name, _ in jobs.calls] == ["sft", "rl"]
    assert os.path.exists(tmp_path / "sft" / chain.STAGE_DONE_FILE)
    assert not os.path.exists(tmp_path / "rl" / chain.STAGE_DONE_FILE)

    jobs.calls.clear()
    results = chain.run_chain(two_stage_config(), workdir, run_job=jobs)
    assert [name for name, _ in jobs.calls] == ["rl"]  # sft was done
    assert jobs.calls[0][1].model.name == os.path.join(workdir, "sft", "hf_model")
    assert results["sft"] == {"loss": 0.5}
    done = json.loads((tmp_path / "rl" / chain.STAGE_DONE_FILE).read_text())
    assert done["config"]["model"]["name"] == os.path.join(workdir, "sft", "hf_model")
    report = (tmp_path / "report.md").read_text()
    assert "| sft | sft |" in report and "configs/from_json.py:" in report

    jobs.calls.clear()
    chain.run_chain(two_stage_config(), workdir, run_job=jobs)
    assert jobs.calls == []
    assert "rl (online_rl): done earlier, skipped" in capsys.readouterr().out

    before = (tmp_path / "rl" / chain.STAGE_DONE_FILE).read_text()
    changed = two_stage_config(rl=dict(reward="reward_model:@sft/hf_model", kl_coef=0.1))
    with pytest.raises(ConfigChangedError, match=r"(?s)/rl holds a run .*rl.kl_coef: '<absent>' then, 0.1 now"):
        chain.run_chain(changed, workdir, run_job=jobs)
    assert (tmp_path / "rl" / chain.STAGE_DONE_FILE).read_text() == before
    # An extending key (here the mesh) leaves finished stages done.
    relaid = two_stage_config()
    for name in ("sft", "rl"):
        relaid.stages[name].mesh = ml_collections.ConfigDict(dict(data=2, fsdp=4))
    chain.run_chain(relaid, workdir, run_job=jobs)
    assert jobs.calls == []


CHAINS = {
    "rlaif": ("tiny", "smollm2", "table1", "table1_tiny", "paper", "paper_tldr", "paper_helpful", "paper_harmless"),
    "d_rlaif": ("tiny", "smollm2", "paper"),
    "instructgpt": ("tiny", "paper"),
}


@pytest.mark.parametrize("name,arg", [(name, arg) for name, args in CHAINS.items() for arg in args])
def test_every_chain_config_passes_its_checks(name, arg):
    config = config_defaults.load_config_file(name, arg)
    chain.check_chain(config)
    rl = config.stages.rl.rl
    assert rl.algorithm == ("ppo" if name == "instructgpt" else "reinforce")
    if name == "rlaif":
        assert config.stages.rm.loss.type == "soft_label"
    if name == "d_rlaif":
        assert rl.reward.startswith("d_rlaif:")
    if arg.startswith("paper"):
        assert rl.prompts.task in ("tldr", "hh_rlhf")


@pytest.mark.slow
def test_rlaif_tiny_runs_every_stage_and_a_rerun_is_a_no_op(tmp_path):
    config = config_defaults.load_config_file("rlaif", "tiny")
    results = pipelines.run(config, str(tmp_path))
    assert list(results) == list(config.chain.order)
    report = (tmp_path / "report.md").read_text()
    assert "| win_rate_gold | win_rate |" in report and "| win_rate_ai | win_rate |" in report
    assert "RLAIF vs SFT (gold:toy judge): win rate" in report
    for png in ("rl_reward_kl.png", "win_rate_gold_win_rate.png", "win_rate_ai_win_rate.png"):
        assert (tmp_path / png).stat().st_size > 1000
    labels = [json.loads(line) for line in open(tmp_path / "labels" / "ai_labels.jsonl")]
    pairs = [json.loads(line) for line in open(tmp_path / "samples" / "pairs.jsonl")]
    assert len(labels) == len(pairs) and all("human_preference" in row for row in labels)  # gold as the human label
    assert 0 <= results["win_rate_gold"]["win_rate"] <= 1

    start = time.perf_counter()
    again = pipelines.run(config, str(tmp_path))
    assert time.perf_counter() - start < 60
    assert again == json.loads(json.dumps(results))

    # The report's reproduce command for a stage: its config.json through configs/from_json.py.
    stage_config = config_defaults.load_config_file("from_json", str(tmp_path / "win_rate_gold" / "config.json"))
    assert pipelines.run(stage_config, str(tmp_path / "repro"))["win_rate"] == results["win_rate_gold"]["win_rate"]


@pytest.mark.slow
def test_instructgpt_tiny_ranking_rm_and_ppo_ptx_raise_gold_reward(tmp_path, record_diff):
    config = config_defaults.load_config_file("instructgpt", "tiny")
    results = pipelines.run(config, str(tmp_path))
    assert record_diff("K-way RM held-out accuracy", results["rm"]["eval_accuracy"], 0.8, ">") > 0.8
    rl = results["rl"]
    gain = record_diff("InstructGPT tiny gold gain", rl["end"]["gold_reward"] - rl["start"]["gold_reward"], 0.1, ">")
    assert gain > 0.1, rl
    assert record_diff("InstructGPT tiny KL, nats/seq", rl["end"]["kl"], 10.0) < 10.0
    metrics = [json.loads(line) for line in open(tmp_path / "rl" / "metrics.jsonl")]
    assert all(row["ptx_loss"] > 0 for row in metrics)  # PPO-ptx: the corpus NLL is in every update
    assert results["win_rate_gold"]["win_rate"] > 0.5


def test_samples_pairs_and_rankings_leave_out_what_cannot_be_labelled():
    from rlaif_jax.pipelines import samples

    prompts = ["p0", "p1", "p2", "p3"]
    responses = [["a", "b", "c"], ["same", "same", "x"], ["", "y", "z"], ["u", "v", "w"]]
    gold = [[0.5, 1.0, 0.5], [0.2, 0.2, 0.9], [0.0, 0.3, 0.3], [0.4, 0.4, 0.4]]
    pairs = samples.pair_rows(prompts, responses, gold)
    assert [(row["prompt"], row["preference"]) for row in pairs] == [("p0", 0.0), ("p3", 0.5)]
    assert samples.pair_rows(prompts[:1], responses[:1]) == [{"prompt": "p0", "response_a": "a", "response_b": "b"}]
    rankings = samples.ranking_rows(prompts, responses, gold)
    assert rankings == [
        {"prompt": "p0", "responses": ["b", "a"], "rewards": [1.0, 0.5]},
        {"prompt": "p1", "responses": ["x", "same"], "rewards": [0.9, 0.2]},
    ]  # p2: only one non-empty distinct reward; p3: all tied


def test_win_rate_table_has_a_row_per_comparison_and_a_column_per_judge():
    from rlaif_jax.evaluation.chain_report import win_rate_table

    def result(a, b, judge, rate):
        return {"policy_a": a, "policy_b": b, "judge": judge, "win_rate": rate, "ci_low": rate - 0.1, "ci_high": rate}

    table = win_rate_table(
        [
            result("RLAIF", "SFT", "gold:toy", 0.7),
            result("RLAIF", "SFT", "ai:tiny", 0.5),
            result("RLHF", "SFT", "gold:toy", 0.8),
        ]
    )
    assert table.splitlines()[0] == "| comparison | gold:toy judge | ai:tiny judge |"
    assert "| RLAIF vs SFT | 0.70 [0.60, 0.70] | 0.50 [0.40, 0.50] |" in table
    assert "| RLHF vs SFT | 0.80 [0.70, 0.80] |  |" in table


@pytest.mark.slow
def test_table1_tiny_compares_rlaif_rlhf_and_sft_under_both_judges(tmp_path, record_diff):
    config = config_defaults.load_config_file("rlaif", "table1_tiny")
    results = pipelines.run(config, str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    for row in ("| RLAIF vs SFT |", "| RLHF vs SFT |", "| RLAIF vs RLHF |"):
        assert row in report
    # RLHF's reward model learns the gold labels of the pairs, so its policy beats SFT under the gold judge.
    rlhf = results["rl_gold"]
    gain = record_diff(
        "table1 tiny: RLHF gold gain", rlhf["end"]["gold_reward"] - rlhf["start"]["gold_reward"], 0.1, ">"
    )
    assert gain > 0.1, rlhf
    assert record_diff("table1 tiny: RLHF vs SFT, gold", results["rlhf_vs_sft_gold"]["win_rate"], 0.5, ">") > 0.5


def test_a_model_config_read_back_from_json_still_samples():
    """A stage's config.json (what configs/from_json.py re-runs) holds lists where configs hold tuples; the model
    built from it must stay hashable for the sampler's jit (found reproducing a CoT win-rate stage)."""
    import jax

    from rlaif_jax import models, sampling
    from rlaif_jax.models.byte_tokenizer import byte_tokenizer

    tiny = json.loads(json.dumps(config_defaults.model("tiny").tiny.to_dict()))
    assert isinstance(tiny["eos_token_ids"], list)
    config = models.ModelConfig(**tiny)
    assert config.eos_token_ids == (258,)
    lm = models.init_random(config, seed=0, tokenizer=byte_tokenizer())
    result = sampling.generate(lm, [[257, 104, 105]], max_new_tokens=3, temperature=0.0, rng=jax.random.key(0))
    assert len(result.texts) == 1
