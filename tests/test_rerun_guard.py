"""The re-run guard (rlaif_jax/rerun_guard.py): unit checks, then real `main` subprocesses."""

import datetime
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from rlaif_jax import rerun_guard
from rlaif_jax import workdir as wd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**changes):
    config = ml_collections.ConfigDict(
        dict(
            job="sft",
            seed=0,
            prompts=["a", "b"],
            train=dict(num_steps=10, log_every=5, batch_size=4),
            checkpoint=dict(every_steps=5, keep=2),
            optimizer=dict(learning_rate=1e-3, schedule="cosine"),
        )
    )
    for key, value in changes.items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


def _as_json(config):
    return json.loads(wd.config_to_json(config))


def test_changed_keys_lists_every_results_changing_key_with_both_values():
    old = _as_json(_config())
    new = _as_json(_config(**{"seed": 3, "optimizer.learning_rate": 2e-3, "train.batch_size": 8}))
    assert rerun_guard.changed_keys(old, new) == [
        ("optimizer.learning_rate", 1e-3, 2e-3),
        ("seed", 0, 3),
        ("train.batch_size", 4, 8),
    ]


def test_extending_keys_and_appended_prompts_continue_a_run():
    old = _as_json(_config())
    new = _as_json(
        _config(
            **{
                "train.num_steps": 20,
                "train.log_every": 1,
                "checkpoint.every_steps": 2,
                "checkpoint.keep": 5,
                "prompts": ["a", "b", "c"],
            }
        )
    )
    assert rerun_guard.changed_keys(old, new) == []
    # Prompts that do not keep the old ones as a prefix change the outputs already written.
    assert rerun_guard.changed_keys(old, _as_json(_config(prompts=["b", "a", "c"]))) == [
        ("prompts", ["a", "b"], ["b", "a", "c"])
    ]


def test_added_and_removed_keys_count_as_changed():
    old = _as_json(_config())
    new = _as_json(_config())
    new["optimizer"]["b1"] = 0.9
    del new["seed"]
    assert rerun_guard.changed_keys(old, new) == [("optimizer.b1", "<absent>", 0.9), ("seed", 0, "<absent>")]


def test_a_setting_added_since_at_its_off_default_changes_nothing():
    old = _as_json(_config())
    new = _as_json(_config())
    new["data"] = {"confidence": [], "filter": "", "weight": 0.0, "on": False}  # added to the library later
    assert rerun_guard.changed_keys(old, new) == []
    new["data"]["on"] = True
    assert rerun_guard.changed_keys(old, new) == [("data.on", "<absent>", True)]


def test_model_layout_keys_continue_a_run_at_any_depth_and_an_old_run_without_them_is_the_same_run():
    old = _as_json(_config())
    old["model"] = {"name": "tiny", "dtype": "float32"}
    old["policy_a"] = {"model": {"name": "tiny"}}
    new = json.loads(json.dumps(old))
    for block in (new["model"], new["policy_a"]["model"]):  # added since, at the values the old run ran with
        block.update(remat="none", attention="auto", vocab_chunk_size=16384, param_dtype="")
    assert rerun_guard.changed_keys(old, new) == []
    assert rerun_guard._compare(old, new)[1] == []  # not even a continuation warning
    new["model"].update(remat="full", attention="xla", vocab_chunk_size=4096)  # memory, not results
    new["policy_a"]["model"]["remat"] = "dots"
    assert rerun_guard.changed_keys(old, new) == []
    assert [key for key, _, _ in rerun_guard._compare(old, new)[1]] == [
        "model.attention",
        "model.remat",
        "model.vocab_chunk_size",
        "policy_a.model.remat",
    ]
    new["model"]["param_dtype"] = "bfloat16"  # master weights in bf16 change the numbers
    assert rerun_guard.changed_keys(old, new) == [("model.param_dtype", "<absent>", "bfloat16")]


def test_a_nested_jobs_cadence_and_pause_extend_it_but_its_num_steps_changes_the_outer_run():
    old = _as_json(_config())
    old["sft"] = {"job": "sft", "train": {"num_steps": 10, "stop_at_step": 4}, "mesh": {"fsdp": 8}}
    new = json.loads(json.dumps(old))
    new["sft"]["train"]["stop_at_step"], new["sft"]["mesh"]["fsdp"] = 0, 4
    assert rerun_guard.changed_keys(old, new) == []
    new["sft"]["train"]["num_steps"] = 20  # the SFT result is the outer run's start: not an extension of it
    assert rerun_guard.changed_keys(old, new) == [("sft.train.num_steps", 10, 20)]


def test_write_config_refuses_a_changed_run_and_writes_nothing(tmp_path):
    wd.write_config(_config(), str(tmp_path))
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(rerun_guard.ConfigChangedError, match=r"(?s)optimizer\.learning_rate: 0\.001 then, 0\.002 now"):
        wd.write_config(_config(**{"optimizer.learning_rate": 2e-3}), str(tmp_path))
    assert (tmp_path / "config.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["config.json"]
    # An extension is written, the old config kept beside it.
    wd.write_config(_config(**{"train.num_steps": 30}), str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 30
    assert json.loads((tmp_path / "config.json.prev-1").read_bytes()) == json.loads(before)


def test_num_steps_below_the_latest_checkpoint_is_an_error(tmp_path):
    wd.write_config(_config(**{"train.num_steps": 40}), str(tmp_path))
    os.makedirs(tmp_path / "checkpoints" / "30")
    os.makedirs(tmp_path / "checkpoints" / "40.orbax-checkpoint-tmp-1")  # unfinished: not a step
    wd.write_config(_config(**{"train.num_steps": 35}), str(tmp_path))  # 35 >= 30: continues
    with pytest.raises(rerun_guard.ConfigChangedError, match=r"checkpoint at step 30, past train.num_steps=20"):
        wd.write_config(_config(**{"train.num_steps": 20}), str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 35


def test_replace_workdir_keeps_the_old_run_under_a_dated_name(tmp_path):
    run = tmp_path / "run"
    assert rerun_guard.replace_workdir(str(run)) is None
    run.mkdir()
    (run / "out.jsonl").write_text("row\n")
    now = datetime.datetime(2026, 12, 4, 3, 4, 5)
    moved = rerun_guard.replace_workdir(str(run), now=now)
    assert moved == f"{run}.replaced-20261204-030405"
    assert (tmp_path / "run.replaced-20261204-030405" / "out.jsonl").read_text() == "row\n"
    assert not run.exists()
    run.mkdir()
    (run / "x").write_text("")
    assert rerun_guard.replace_workdir(str(run), now=now) == f"{run}.replaced-20261204-030405-2"


def _main(workdir, *overrides):
    command = [
        sys.executable,
        "-m",
        "rlaif_jax.main",
        "--config=configs/generate.py:tiny",
        f"--workdir={workdir}",
        "--config.sampling.max_new_tokens=4",
        *overrides,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _snapshot(directory):
    return {
        os.path.relpath(os.path.join(root, name), directory): open(os.path.join(root, name), "rb").read()
        for root, _, names in os.walk(directory)
        for name in names
    }


def test_generate_rerun_with_changed_sampling_stops_and_overwrite_starts_afresh(tmp_path):
    workdir = tmp_path / "gen"
    first = _main(workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _snapshot(workdir)
    assert "generations.jsonl" in before

    changed = _main(workdir, "--config.sampling.temperature=0.7", "--config.seed=5")
    assert changed.returncode != 0
    assert "sampling.temperature: 0.0 then, 0.7 now" in changed.stderr
    assert "seed: 0 then, 5 now" in changed.stderr
    assert "all prompts already answered" not in changed.stdout
    assert _snapshot(workdir) == before  # byte-identical: nothing written

    fresh = _main(workdir, "--config.sampling.temperature=0.7", "--config.overwrite=True")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    kept = [name for name in os.listdir(tmp_path) if name.startswith("gen.replaced-")]
    assert len(kept) == 1
    assert _snapshot(tmp_path / kept[0]) == before
    assert json.loads((workdir / "config.json").read_text())["sampling"]["temperature"] == 0.7


def test_a_config_json_that_is_not_json_stops_the_rerun_naming_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"seed": 0, "train": {')  # torn by hand or by another tool
    with pytest.raises(rerun_guard.ConfigChangedError, match=r"config\.json: not JSON"):
        wd.write_config(_config(), str(tmp_path))
    assert (tmp_path / "config.json").read_text() == '{"seed": 0, "train": {'


def test_overwrite_flag_is_taken_out_of_argv_and_a_bad_value_is_named():
    from rlaif_jax import config_overrides

    argv = ["main.py", "--config=configs/sft.py:tiny", "--config.overwrite=True", "--workdir=w"]
    assert config_overrides.split_overwrite(argv) == (["main.py", "--config=configs/sft.py:tiny", "--workdir=w"], True)
    assert config_overrides.split_overwrite(["main.py", "--config.overwrite=false"]) == (["main.py"], False)
    assert config_overrides.split_overwrite(["main.py"]) == (["main.py"], False)
    with pytest.raises(SystemExit, match=r"--config.overwrite='maybe': expected True or False"):
        config_overrides.split_overwrite(["main.py", "--config.overwrite=maybe"])


def test_resume_step_past_num_steps_names_the_checkpoint_directory(tmp_path):
    import jax.numpy as jnp

    from rlaif_jax.checkpoints.orbax_state import CheckpointManager

    with CheckpointManager(str(tmp_path)) as manager:
        manager.save(5, {"w": jnp.ones(2)})
    manager = CheckpointManager(str(tmp_path))
    assert manager.resume_step(5) == 5
    with pytest.raises(ValueError, match=r"checkpoints has a checkpoint at step 5, past config.train.num_steps=3"):
        manager.resume_step(3)  # a derived step count (num_steps=0 in the config) below the checkpoint
