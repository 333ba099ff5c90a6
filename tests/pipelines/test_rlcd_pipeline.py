"""The RLCD chain (configs/rlcd.py; jobs rlcd_demos, rlcd_pairs, rlcd_agreement): its pure helpers on hand-made
inputs, the retry rule, the up-front config checks, and the tiny chain end to end."""

import json
import os
import time

import numpy as np
import pytest

from rlaif_jax import chain, config_defaults, pipelines
from rlaif_jax.data.toy import LETTERS, PROMPT_PREFIX, toy_reward
from rlaif_jax.feedback import rlcd
from rlaif_jax.pipelines import rlcd_stages as rlcd_pipeline
from rlaif_jax.sampling import GenerationOutput


def tiny_config(arg="tiny", *, drop=(), **overrides):
    """configs/rlcd.py:ARG with `overrides` ('rlcd.num_pairs': 16, 'stages.rm.train.num_steps': 2, ...) and the
    stages in `drop` removed from the chain."""
    config = config_defaults.load_config_file("rlcd", arg)
    config.chain.order = [name for name in config.chain.order if name not in drop]
    for name in drop:
        del config.stages[name]
    for key, value in overrides.items():
        node = config
        *parents, last = key.split(".")
        for parent in parents:
            node = node[parent]
        node[last] = value
    return config


def random_init(config) -> None:
    """Every stage starts from the random-init tiny model in place of the stage-0 SFT result."""
    for name in config.chain.order:
        if "model" in config.stages[name]:
            config.stages[name].model.name = "tiny"


def test_gold_agreement_drops_gold_ties():
    # Pairs: agree, disagree, gold tie (dropped), RM tie (a disagreement), agree.
    result = rlcd_pipeline.gold_agreement(np.array([0.5, -1.0, 2.0, 0.0, -0.1]), np.array([0.2, 0.3, 0.0, 0.4, -1]))
    assert result == {"agreement": 0.5, "num_pairs": 4, "num_gold_ties": 1}
    assert rlcd_pipeline.gold_agreement(np.ones(2), np.zeros(2))["agreement"] is None
    with pytest.raises(ValueError, match="expected equal"):
        rlcd_pipeline.gold_agreement(np.ones(2), np.ones(3))


def test_label_accuracy_scores_the_construction_labels_with_the_gold_judge():
    rows = [
        {"prompt": "letter: c", "chosen": "cccccc", "rejected": "cccaaa"},  # gold 1.0 vs 0.5: right
        {"prompt": "letter: c", "chosen": "ccc", "rejected": "cccccc"},  # 0.5 vs 1.0: wrong
        {"prompt": "letter: a", "chosen": "ab", "rejected": "ba"},  # tie
    ]
    gold = lambda prompts, texts: np.array([toy_reward(p, t) for p, t in zip(prompts, texts)])  # noqa: E731
    assert rlcd_pipeline.label_accuracy(gold, rows) == {"label_accuracy": 0.5, "num_pairs": 2, "num_gold_ties": 1}


def test_toy_affix_demonstrations_follow_the_affixes():
    affixes = rlcd.affix_set("toy")
    rows = rlcd_pipeline.toy_affix_demonstrations(3000, seed=0, affixes=affixes, noise=(0.5, 0.0, 0.0))
    assert len(rows) == 3000
    plain, positive, negative = rows[:1000], rows[1000:2000], rows[2000:]
    assert all(row["prompt"][len(PROMPT_PREFIX) :] in LETTERS for row in plain)
    assert all(row["prompt"].split(" ", 2)[2] in affixes.positive for row in positive)
    assert all(row["prompt"].split(" ", 2)[2] in affixes.negative for row in negative)
    plain_reward = np.mean([toy_reward(row["prompt"], row["response"]) for row in plain])
    assert abs(plain_reward - 0.5) < 0.03  # noise 0.5
    assert all(toy_reward(row["prompt"].rsplit(" ", 1)[0], row["response"]) == 1.0 for row in positive)
    # Careless: another letter (reward 0) or 1-5 right letters (reward length / 6), half each.
    negative_rewards = [toy_reward(row["prompt"].rsplit(" ", 1)[0], row["response"]) for row in negative]
    assert abs(np.mean(np.array(negative_rewards) == 0.0) - 0.5) < 0.05
    assert max(negative_rewards) <= 5 / 6
    assert abs(np.mean(negative_rewards) - 0.5 * 0.5) < 0.03  # 0.5 * mean(1..5)/6 = 0.25


def test_jsonl_dialogues_are_cut_and_split(tmp_path):
    path = tmp_path / "dialogues.jsonl"
    transcripts = [f"\n\nHuman: q{i}\n\nAssistant: a{i}\n\nHuman: r{i}\n\nAssistant: b{i}" for i in range(20)]
    path.write_text("".join(json.dumps({"chosen": t}) + "\n" for t in transcripts))
    task = tiny_config(**{"task.name": "jsonl", "task.train_file": str(path), "task.prompt_field": "chosen"}).task
    train = rlcd_pipeline.task_prompt_texts(task, "train", 0, dialogue=True)
    held_out = rlcd_pipeline.task_prompt_texts(task, "held_out", 0, dialogue=True)
    assert (len(train), len(held_out)) == (19, 1)  # eval_fraction 0.05 of 20
    assert set(train) | set(held_out) == {
        f"Human: q{i}\n\nAssistant: a{i}\n\nHuman: r{i}\n\nAssistant:" for i in range(20)
    }
    path.write_text(json.dumps({"chosen": "Human: no assistant turn"}) + "\n")
    with pytest.raises(ValueError, match=r"dialogues.jsonl:1: column 'chosen': no 'Assistant:' turn"):
        rlcd_pipeline.task_prompt_texts(task, "train", 0, dialogue=True)


def test_config_errors_name_the_key_before_any_stage_runs(tmp_path):
    with pytest.raises(ValueError, match=r"config.stages.pairs: config.task.name='letters'"):
        pipelines.run(tiny_config(**{"task.name": "letters"}), str(tmp_path))
    with pytest.raises(ValueError, match=r"config.task.train_file is not set \(task 'jsonl'\)"):
        pipelines.run(tiny_config(**{"task.name": "jsonl"}), str(tmp_path))
    with pytest.raises(ValueError, match="config.rlcd.postprocess='raw'"):
        pipelines.run(tiny_config(**{"rlcd.postprocess": "raw"}), str(tmp_path))
    with pytest.raises(ValueError, match=r"config.stages.agreement: config.agreement.gold_reward is not set"):
        pipelines.run(tiny_config(**{"stages.agreement.agreement.gold_reward": ""}), str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing ran


def test_stage_jobs_refuse_missing_inputs_naming_the_key(tmp_path):
    from rlaif_jax.pipelines import rlcd_agreement, rlcd_demos

    agreement = tiny_config().stages.agreement.copy_and_resolve_references()
    agreement.agreement.reward_model = str(tmp_path / "no_rm")
    with pytest.raises(FileNotFoundError, match=r"config.agreement.reward_model: no .*no_rm"):
        rlcd_agreement.run(agreement, str(tmp_path / "agreement"))
    demos = tiny_config().stages.demos.copy_and_resolve_references()
    demos.noise = (0.5, 0.0)
    with pytest.raises(ValueError, match=r"config.noise=\(0.5, 0.0\): expected 3 values"):
        rlcd_demos.run(demos, str(tmp_path / "demos"))
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("arg", ["tiny", "smollm2", "paper", "tiny_rescore", "smollm2_rescore", "paper_rescore"])
def test_every_rlcd_chain_passes_its_checks_and_shares_its_settings(arg):
    config = config_defaults.load_config_file("rlcd", arg)
    chain.check_chain(config)
    assert config.stages.rm.data.train_file == (
        "@pairs/pairs_rescored.jsonl" if "rescore" in arg else "@pairs/pairs.jsonl"
    )
    assert config.stages.rl.rl.reward == "reward_model:@rm" and config.stages.rl.rl.algorithm == "ppo"
    config.rlcd.num_pairs, config.task.use_chat_template = 7, True  # one override reaches every stage
    resolved = config.copy_and_resolve_references()
    assert resolved.stages.pairs.rlcd.num_pairs == 7
    assert resolved.stages.rm.data.use_chat_template and resolved.stages.rl.rl.use_chat_template
    if "agreement" in resolved.stages:
        assert resolved.stages.agreement.rlcd.num_pairs == 7


def test_rejected_samples_are_drawn_again_up_to_max_attempts(monkeypatch):
    """Scripted sampler: prompt 0 succeeds at once, prompt 1 on the second draw, prompt 2 never."""
    scripts = {0: ["ok0"], 1: ["", "ok1"], 2: ["", "", ""]}
    draws = {0: 0, 1: 0, 2: 0}
    batch_sizes = []

    def fake_generate(lm, prompts, **kwargs):
        texts = []
        for ids in prompts:
            index = ids[0]
            texts.append(scripts[index][min(draws[index], len(scripts[index]) - 1)])
            draws[index] += 1
        batch_sizes.append(len(prompts))
        return GenerationOutput(None, None, None, None, texts)

    monkeypatch.setattr(rlcd_pipeline.sampling, "generate", fake_generate)
    outputs = rlcd_pipeline.sample_outputs(
        None,
        [[0], [1], [2]],
        rlcd.postprocess_chat_output,
        rng=__import__("jax").random.key(0),
        max_new_tokens=4,
        temperature=1.0,
        batch_size=2,
        max_attempts=3,
    )
    assert outputs == ["ok0", "ok1", None]
    assert draws == {0: 1, 1: 2, 2: 3}
    assert batch_sizes == [2, 1, 2, 1]  # attempt 1: [0, 1], [2]; attempt 2: [1, 2]; attempt 3: [2]


def test_dialogue_task_builds_affixed_prompts_and_drops_unfinished_turns(tmp_path):
    """A random tiny model never writes a `Human` turn, so the authors' post-processing rejects every side."""
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "Human: hi\n\nAssistant: yo\n\nHuman: ok?\n\nAssistant:"}) + "\n")
    config = tiny_config(
        drop=("demos", "sft", "rl"),
        **{
            "task.name": "jsonl",
            "task.train_file": str(path),
            "task.eval_file": str(path),
            "rlcd.affixes": "harmless",
            "rlcd.prompt_format": "dialogue",
            "rlcd.postprocess": "dialogue",
            "rlcd.max_prompt_length": 128,
            "rlcd.num_pairs": 4,
        },
    )
    random_init(config)
    with pytest.raises(RuntimeError, match=r"no RLCD pair survived.*'num_sides_rejected': 8"):
        pipelines.run(config, str(tmp_path / "run"))
    from rlaif_jax.models.setup import build_model

    pairs = config.stages.pairs.copy_and_resolve_references()
    lm = build_model(pairs.model, None, None)
    rows, stats = rlcd_pipeline.contrast_pairs(
        lm,
        ["Human: hi\n\nAssistant: yo\n\nHuman: ok?\n\nAssistant:"],
        pairs,
        seed=0,
        rng=__import__("jax").random.key(1),
    )
    assert rows == [] and stats["num_sides_rejected"] == 2
    index = int(rlcd.draw_affix_indices(1, 16, seed=0)[0])
    positive, negative = rlcd_pipeline.contrast_prompt_pair(
        "Human: hi\n\nAssistant: yo\n\nHuman: ok?\n\nAssistant:", rlcd.affix_set("harmless"), index, dialogue=True
    )
    assert positive.endswith(f"Assistant {rlcd.HARMLESS_POSITIVE_AFFIXES[index]}:")
    assert f"Assistant {rlcd.HARMLESS_NEGATIVE_AFFIXES[index]}: yo" in positive


def test_rescore_stage_relabels_pairs_and_feeds_the_reward_model(tmp_path):
    """Random tiny model, 16 pairs: RLCD-Rescore writes pairs_rescored.jsonl (same pairs, chosen = the scorer's
    pick) and the reward model trains on it; a re-run skips every stage."""
    config = tiny_config(
        "tiny_rescore",
        drop=("demos", "sft", "rl"),
        **{
            "rlcd.num_pairs": 16,
            "stages.agreement.agreement.num_prompts": 8,
            "stages.rm.train.num_steps": 2,
        },
    )
    random_init(config)
    workdir = tmp_path / "run"
    results = pipelines.run(config, str(workdir))
    pairs = [json.loads(line) for line in open(workdir / "pairs" / "pairs.jsonl")]
    rescored = [json.loads(line) for line in open(workdir / "pairs" / "pairs_rescored.jsonl")]
    assert len(pairs) == len(rescored) == results["pairs"]["pairs"]["num_pairs"] > 0
    for pair, row in zip(pairs, rescored):
        assert {row["chosen"], row["rejected"]} == {pair["chosen"], pair["rejected"]}
        assert 0.5 <= row["preference"] <= 1.0
        assert (row["chosen"] == pair["chosen"]) == (row["positive_win_prob"] >= 0.5)
        assert pair["positive_prompt"] == pair["prompt"] + " " + rlcd.AFFIX_SETS["toy"].positive[pair["affix_index"]]
    rm_config = json.loads((workdir / "rm" / "config.json").read_text())
    assert rm_config["data"]["train_file"] == str(workdir / "pairs" / "pairs_rescored.jsonl")
    assert rm_config["data"]["source"] == "jsonl"
    agreement = json.loads((workdir / "agreement" / "rm_gold_agreement.json").read_text())
    assert agreement["num_held_out_prompts"] == 8
    assert agreement["iid"]["num_pairs"] + agreement["iid"]["num_gold_ties"] <= 8
    mtime = os.path.getmtime(workdir / "agreement" / "rm_gold_agreement.json")
    start = time.perf_counter()
    assert pipelines.run(config, str(workdir)).keys() == results.keys()  # every stage skipped, results read back
    assert os.path.getmtime(workdir / "agreement" / "rm_gold_agreement.json") == mtime
    assert time.perf_counter() - start < 30


@pytest.mark.slow
def test_tiny_chain_learns_a_reward_that_agrees_with_gold_and_ppo_raises_it(tmp_path, record_diff):
    """configs/rlcd.py:tiny end to end: stage-0 SFT, 1024 contrast pairs, RM, held-out agreement, PPO."""
    results = pipelines.run(config_defaults.load_config_file("rlcd", "tiny"), str(tmp_path))
    assert list(results) == ["demos", "sft", "pairs", "rm", "agreement", "rl"]
    agreement = json.loads((tmp_path / "agreement" / "rm_gold_agreement.json").read_text())
    assert results["pairs"]["pairs"]["num_pairs"] > 950  # of 1024: few empty sides
    # The construction labels are right by the gold judge (the stage-0 model follows the affixes) ...
    assert record_diff("train label accuracy", agreement["train_pairs"]["label_accuracy"], 0.85, ">") > 0.85
    # ... and the RM trained on them agrees with gold on fresh held-out pairs, contrast and i.i.d., above chance.
    assert record_diff("RM-gold agreement, contrast", agreement["contrast"]["agreement"], 0.75, ">") > 0.75
    assert record_diff("RM-gold agreement, i.i.d.", agreement["iid"]["agreement"], 0.6, ">") > 0.6
    assert agreement["iid"]["num_pairs"] > 150
    start = json.loads((tmp_path / "rl" / "eval_start.json").read_text())
    end = json.loads((tmp_path / "rl" / "eval_end.json").read_text())
    assert start["kl"] == 0.0
    gain = record_diff("PPO held-out gold gain", end["gold_reward"] - start["gold_reward"], 0.03, ">")
    assert gain > 0.03, (start, end)
