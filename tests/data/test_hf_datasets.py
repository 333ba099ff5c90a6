"""The published-dataset loaders on tiny local fixtures in the published schemas; malformed rows name file and row."""

import json
import os
import shutil

import pytest

from rlaif_jax.data import hf_datasets

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_summarize_comparisons_become_tldr_pairs(tmp_path):
    rows = hf_datasets.load_summarize_comparisons(fixture("summarize_comparisons.jsonl"), cache_dir=str(tmp_path))
    assert len(rows) == 3  # the CNN/DM comparison is skipped
    assert rows[0]["prompt"] == (
        "SUBREDDIT: r/cats\nTITLE: How do I stop my cat waking me up?\n"
        "POST: My cat knocks everything off the table at 3am. I tried a spray bottle but it did not help.\nTL;DR:"
    )
    assert rows[0]["chosen"] == " Cat knocks things over at night; spray bottle failed."  # choice 0
    assert rows[0]["rejected"] == " I have a cat."
    assert rows[1]["chosen"].startswith(" Girlfriend of two years")  # choice 1
    assert rows[1]["rejected"] == " Girlfriend is moving."
    assert [row["_source"].rsplit(" ", 1)[-1] for row in rows] == ["0", "1", "3"]
    assert all(row["preference"] == 1.0 and row["margin"] == 0.0 for row in rows)


def test_tldr_sft_rows(tmp_path):
    rows = hf_datasets.load_tldr_sft(fixture("tldr_sft.jsonl"), cache_dir=str(tmp_path))
    assert [row["response"] for row in rows] == [
        " Cat knocks things over at night.",
        " 5k time is stuck.",
        " Rice burns at the bottom, what am I doing wrong?",
    ]
    assert rows[1]["prompt"] == (
        "SUBREDDIT: r/running\nTITLE: Stuck at 30 minutes\nPOST: I run 5k three times a week.\nTL;DR:"
    )
    # The comparisons' prompt builder writes the same format as the SFT data.
    assert (
        hf_datasets.tldr_prompt("running", "Stuck at 30 minutes", "I run 5k three times a week.") == rows[1]["prompt"]
    )


def test_hh_rlhf_splits_shared_history_from_final_answers(tmp_path):
    rows = hf_datasets.load_hh_rlhf(fixture("hh_rlhf.jsonl"), cache_dir=str(tmp_path))
    assert len(rows) == 3  # identical chosen / rejected skipped
    assert rows[0] == {
        "prompt": "\n\nHuman: What is a good name for a goldfish?\n\nAssistant:",
        "chosen": " How about Bubbles?",
        "rejected": " Fish don't need names.",
        "preference": 1.0,
        "margin": 0.0,
        "_source": f"{fixture('hh_rlhf.jsonl')} row 0",
    }
    # Multi-turn: the prompt keeps every earlier turn; answers sharing the words "About " still split at the turn.
    assert rows[1]["prompt"].endswith("\n\nHuman: For how long?\n\nAssistant:")
    assert rows[1]["prompt"].count("\n\nAssistant:") == 2
    assert (rows[1]["chosen"], rows[1]["rejected"]) == (" About nine minutes for a hard yolk.", " About an hour.")


def test_hh_rlhf_directory_picks_split_files(tmp_path):
    data = tmp_path / "data" / "helpful-base"
    data.mkdir(parents=True)
    shutil.copy(fixture("hh_rlhf.jsonl"), data / "train.jsonl")
    write_jsonl(data / "test.jsonl", [json.loads(open(fixture("hh_rlhf.jsonl")).readline())])
    cache = str(tmp_path / "cache")
    assert len(hf_datasets.load_hh_rlhf(str(tmp_path / "data"), "train", cache_dir=cache)) == 3
    assert len(hf_datasets.load_hh_rlhf(str(tmp_path / "data"), "test", cache_dir=cache)) == 1
    with pytest.raises(FileNotFoundError, match="split 'validation'"):
        hf_datasets.load_hh_rlhf(str(tmp_path / "data"), "validation", cache_dir=cache)


def test_load_pairs_reads_an_hh_subset_of_a_local_copy_and_names_bad_keys(tmp_path):
    for subset, rows in (("helpful-base", 3), ("harmless-base", 1)):
        (tmp_path / subset).mkdir()
        lines = open(fixture("hh_rlhf.jsonl")).read().splitlines(keepends=True)
        (tmp_path / subset / "train.jsonl").write_text("".join(lines[:rows]))
    assert len(hf_datasets.load_pairs("hh_rlhf", str(tmp_path), "train", data_dir="harmless-base")) == 1
    assert len(hf_datasets.load_pairs("hh_rlhf", str(tmp_path / "helpful-base"), "train")) == 3
    with pytest.raises(FileNotFoundError, match=r"data_dir='red-team': no directory .*red-team"):
        hf_datasets.load_pairs("hh_rlhf", str(tmp_path), "train", data_dir="red-team")
    with pytest.raises(ValueError, match=r"data_dir='helpful-base' is only for source 'hh_rlhf'"):
        hf_datasets.load_pairs("summarize_from_feedback", str(tmp_path), "train", data_dir="helpful-base")
    with pytest.raises(ValueError, match=r"unknown preference dataset 'shp'"):
        hf_datasets.load_pairs("shp", str(tmp_path), "train")


def test_malformed_rows_name_file_and_row(tmp_path):
    cache = str(tmp_path / "cache")
    good = json.loads(open(fixture("summarize_comparisons.jsonl")).readline())
    path = write_jsonl(tmp_path / "comparisons.jsonl", [good, {**good, "choice": 2}])
    with pytest.raises(ValueError, match=r"comparisons.jsonl row 1: field 'choice' must be 0 or 1, got 2"):
        hf_datasets.load_summarize_comparisons(path, cache_dir=cache)
    no_title = {**good, "info": {**good["info"], "title": ""}}
    path = write_jsonl(tmp_path / "titles.jsonl", [no_title])
    with pytest.raises(ValueError, match=r"titles.jsonl row 0: field 'info.title' is missing, empty"):
        hf_datasets.load_summarize_comparisons(path, cache_dir=cache)
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "hello"}])
    with pytest.raises(ValueError, match=r"hh.jsonl row 0: no shared 'Assistant:' turn"):
        hf_datasets.load_hh_rlhf(path, cache_dir=cache)
    path = write_jsonl(tmp_path / "tldr.jsonl", [{"prompt": "POST: x\nTL;DR:", "label": "y"}, {"prompt": "p"}])
    with pytest.raises(ValueError, match=r"tldr.jsonl row 1: field 'label' is missing"):
        hf_datasets.load_tldr_sft(path, cache_dir=cache)
    (tmp_path / "broken.jsonl").write_text('{"prompt": "a", "label": "b"}\n{not json\n')
    with pytest.raises(ValueError, match=r"broken.jsonl: could not read as JSON lines"):
        hf_datasets.load_tldr_sft(str(tmp_path / "broken.jsonl"), cache_dir=cache)


def test_hh_rlhf_row_whose_histories_differ_is_skipped():
    record = {
        "chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
        "rejected": "\n\nHuman: a\n\nAssistant: x\n\nHuman: c\n\nAssistant: d",
    }
    with pytest.raises(hf_datasets.SkipRow, match="differ before their final"):
        hf_datasets.hh_rlhf_to_pair(record)
