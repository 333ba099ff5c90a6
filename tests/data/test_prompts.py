"""Prompt sources (data/prompts.py) on local copies of the published layouts; bad sources name key, file and row."""

import json
import os

import pytest

from rlaif_jax.data import pretraining
from rlaif_jax.data import prompts as prompt_data
from rlaif_jax.models.byte_tokenizer import byte_tokenizer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def hh_directory(tmp_path):
    """A local copy of the hub layout: DIR/{harmless,helpful}-base/{train,test}.jsonl."""
    rows = [json.loads(line) for line in open(os.path.join(FIXTURES, "hh_rlhf.jsonl"))]
    root = tmp_path / "hh"
    for subset, chosen in (("harmless-base", rows[:2]), ("helpful-base", rows[2:])):
        (root / subset).mkdir(parents=True)
        write_jsonl(root / subset / "train.jsonl", chosen)
        write_jsonl(root / subset / "test.jsonl", chosen[:1])
    return str(root)


def test_tldr_posts_split_by_held_out_fraction():
    source = prompt_data.source_config("tldr", train_file=os.path.join(FIXTURES, "tldr_sft.jsonl"), eval_fraction=1 / 3)
    train = prompt_data.load_prompts(source, "train", seed=0)
    held_out = prompt_data.load_prompts(source, "held_out", seed=0)
    assert (len(train), len(held_out)) == (2, 1)
    assert not set(train) & set(held_out)
    assert all(p.startswith("SUBREDDIT: r/") and p.endswith("\nTL;DR:") for p in train + held_out)
    assert prompt_data.load_prompts(source, "train", seed=0) == train  # seeded


def test_hh_dialogues_cut_after_last_assistant_turn_and_subset_by_data_dir(tmp_path):
    root = hh_directory(tmp_path)
    everything = prompt_data.load_prompts(prompt_data.source_config("hh_rlhf", train_file=root), "train")
    harmless = prompt_data.load_prompts(
        prompt_data.source_config("hh_rlhf", train_file=root, data_dir="harmless-base"), "train"
    )
    assert harmless == [
        "Human: What is a good name for a goldfish?\n\nAssistant:",
        "Human: How do I boil an egg?\n\nAssistant: Put it in boiling water.\n\nHuman: For how long?\n\nAssistant:",
    ]
    assert set(harmless) < set(everything)
    held_out = prompt_data.load_prompts(
        prompt_data.source_config("hh_rlhf", train_file=root, data_dir="harmless-base"), "held_out"
    )
    assert held_out == harmless[:1]  # the 'test' files
    with pytest.raises(FileNotFoundError, match="prompts.data_dir: no directory .*red-team"):
        prompt_data.load_prompts(prompt_data.source_config("hh_rlhf", train_file=root, data_dir="red-team"), "train")


def test_jsonl_column_with_dialogue_cut_and_num_prompts_cycle(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [{"chosen": f"\n\nHuman: q{i}?\n\nAssistant: a{i}.", "other": 1} for i in range(4)],
    )
    source = prompt_data.source_config("jsonl", train_file=path, field="chosen", dialogue=True, eval_fraction=0.25)
    train = prompt_data.load_prompts(source, "train")
    assert len(train) == 3 and all(p.startswith("Human: q") and p.endswith("Assistant:") for p in train)
    assert prompt_data.load_prompts(source, "train", num_prompts=7) == [train[i % 3] for i in range(7)]


def test_bad_sources_name_key_file_and_row(tmp_path):
    with pytest.raises(ValueError, match=r"unknown prompt-source keys \['fiel'\]"):
        prompt_data.source_config("jsonl", fiel="x")
    with pytest.raises(ValueError, match="config.rl.prompts.task='letters'"):
        prompt_data.check_source(prompt_data.source_config("letters"), "config.rl.prompts")
    with pytest.raises(ValueError, match=r"config.rl.prompts.train_file is not set \(task 'jsonl'\)"):
        prompt_data.check_source(prompt_data.source_config("jsonl"), "config.rl.prompts")
    with pytest.raises(FileNotFoundError, match="prompts.train_file: no file .*missing.jsonl"):
        prompt_data.load_prompts(
            prompt_data.source_config("jsonl", train_file=str(tmp_path / "missing.jsonl")), "train"
        )
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine"}, {"text": "no prompt column"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing column 'prompt'"):
        prompt_data.load_prompts(prompt_data.source_config("jsonl", train_file=path, eval_fraction=0.0), "train")
    path = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": "fine"}, {"prompt": "  "}])
    with pytest.raises(ValueError, match=r"empty.jsonl:2: column 'prompt' is empty or not a string"):
        prompt_data.load_prompts(prompt_data.source_config("jsonl", train_file=path, eval_fraction=0.0), "train")
    path = write_jsonl(tmp_path / "turns.jsonl", [{"chosen": "Human: hi"}])
    with pytest.raises(ValueError, match=r"turns.jsonl:1: column 'chosen': no 'Assistant:' turn"):
        source = prompt_data.source_config("jsonl", train_file=path, field="chosen", dialogue=True, eval_fraction=0)
        prompt_data.load_prompts(source, "train")
    with pytest.raises(ValueError, match="split='test'"):
        prompt_data.load_prompts("toy", "test")


def test_prompt_over_max_length_names_source_and_index():
    tokenizer = byte_tokenizer()
    with pytest.raises(ValueError, match=r"rl.prompts \(tldr, train\) prompt 1 has 12 tokens > max_prompt_length=8"):
        prompt_data.encode_prompts(
            tokenizer,
            ["short", "a longer one"],
            use_chat_template=False,
            max_prompt_length=8,
            source="rl.prompts (tldr, train)",
        )


def test_pretraining_windows_cover_the_corpus_and_score_every_token(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("first document here\n\nsecond one\n\n\nthird")
    documents = pretraining.read_corpus(str(corpus))
    assert documents == ["first document here", "second one", "third"]
    tokenizer = byte_tokenizer()
    windows = pretraining.corpus_windows(tokenizer, documents, max_length=8)
    stream = []
    for document in documents:
        stream += tokenizer(document, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    width = 8 - len(bos)
    assert windows["tokens"].shape == (-(-len(stream) // width), 8)
    real = [row[mask].tolist() for row, mask in zip(windows["tokens"], windows["attention_mask"])]
    assert [t for row in real for t in row[len(bos) :]] == stream  # every token once, in order
    assert all(row[: len(bos)] == bos for row in real)
    assert (windows["loss_mask"] == windows["attention_mask"]).all()
    batch = pretraining.ptx_sampler(windows, seed=0)(5, 3)
    assert sorted(batch) == ["ptx_attention_mask", "ptx_loss_mask", "ptx_tokens"]
    assert batch["ptx_tokens"].shape == (5, 8)
    assert (batch["ptx_tokens"] == pretraining.ptx_sampler(windows, seed=0)(5, 3)["ptx_tokens"]).all()

    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}, {"body": "b"}])
    with pytest.raises(ValueError, match=r"c.jsonl:2: missing column 'text'"):
        pretraining.read_corpus(jsonl)
    with pytest.raises(FileNotFoundError, match="pretraining corpus .*nope.txt"):
        pretraining.read_corpus(str(tmp_path / "nope.txt"))
