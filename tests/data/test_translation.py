"""The synthetic translation task, the IWSLT / WMT loaders on local fixtures in the HF `translation` schema, and the
chrF / BLEU reward against sacrebleu itself.

tests/data/fixtures/wmt19_zh_en.parquet was written with pyarrow from the two rows asserted below
(`pyarrow.parquet.write_table(pyarrow.Table.from_pylist([{"translation": {"en": ..., "zh": ...}}, ...]))`).
"""

import json
import os
import shutil

import numpy as np
import pytest
import sacrebleu

from rlaif_jax.data import translation
from rlaif_jax.rewards.translation import TranslationReward, sentence_score

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
IWSLT = os.path.join(FIXTURES, "iwslt2017_de_en.jsonl")
WMT = os.path.join(FIXTURES, "wmt19_zh_en.parquet")


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return str(path)


# --- the synthetic language -------------------------------------------------------------------------------------


def test_translate_substitutes_words_and_reorders():
    # SVO with adjectives before nouns -> subject, object (each noun then its adjective), verb last.
    assert translation.translate("big cat sees small dog") == "mio gro vau pik vid"
    assert translation.translate("old cow chases red fish") == "mu vek glu ros kur"
    assert translation.translation_prompt("big cat sees small dog") == "big cat sees small dog ="
    with pytest.raises(ValueError, match="'purple' is not a known adjective"):
        translation.translate("purple cat sees small dog")
    with pytest.raises(ValueError, match="expected 5 words"):
        translation.translate("cat sees dog")


def test_splits_are_disjoint_and_cover_the_grammar():
    splits = {split: translation.split_sources(split) for split in translation.SPLITS}
    assert {split: len(sources) for split, sources in splits.items()} == {"train": 1792, "valid": 256, "test": 256}
    assert len(translation.all_sentences()) == 4 * 6 * 4 * 4 * 6 == 2304
    union = set(splits["train"]) | set(splits["valid"]) | set(splits["test"])
    assert len(union) == 2304  # disjoint and complete
    assert translation.split_sources("test") == splits["test"]  # fixed, whatever the caller's seed
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        translation.split_sources("dev")


def test_rows_are_seeded_and_noise_replaces_words_at_its_rate():
    clean = translation.translation_rows("train", 50, seed=3)
    assert clean == translation.translation_rows("train", 50, seed=3)
    assert clean != translation.translation_rows("train", 50, seed=4)
    train = set(translation.split_sources("train"))
    for row in clean:
        source = row["prompt"][: -len(translation.PROMPT_SUFFIX)]
        assert source in train
        assert row["response"] == " " + row["reference"] == " " + translation.translate(source)
    every_word_wrong = translation.translation_rows("train", 50, seed=3, noise=1.0)
    for row in every_word_wrong:
        assert all(a != b for a, b in zip(row["response"].split(), row["reference"].split()))
    noisy = translation.translation_rows("train", 2000, seed=0, noise=0.4)
    wrong = np.mean([a != b for row in noisy for a, b in zip(row["response"].split(), row["reference"].split())])
    assert abs(wrong - 0.4) < 0.02  # 10,000 words: standard error 0.005
    with pytest.raises(ValueError, match="noise=1.5"):
        translation.translation_rows("train", 1, seed=0, noise=1.5)


def test_references_by_prompt():
    references = translation.references_by_prompt("valid")
    assert len(references) == 256
    prompt, reference = next(iter(references.items()))
    assert reference == translation.translate(prompt[: -len(translation.PROMPT_SUFFIX)])


# --- IWSLT / WMT loaders ------------------------------------------------------------------------------------------


def test_iwslt2017_rows_from_jsonl(tmp_path):
    rows = translation.load_iwslt2017(IWSLT, cache_dir=str(tmp_path))
    assert [row["source"] for row in rows] == [
        "Vielen Dank, Chris.",
        "Es ist mir wirklich eine Ehre, zweimal auf dieser Bühne stehen zu dürfen.",
        "Ich bin wirklich begeistert.",
    ]
    assert rows[0]["target"] == "Thank you so much, Chris."
    assert rows[2]["_source"] == f"{IWSLT} row 2"
    reverse = translation.load_iwslt2017(IWSLT, source_lang="en", target_lang="de", cache_dir=str(tmp_path))
    assert (reverse[1]["source"], reverse[1]["target"]) == (rows[1]["target"], rows[1]["source"])


def test_wmt19_rows_from_parquet(tmp_path):
    rows = translation.load_wmt(WMT, cache_dir=str(tmp_path))  # zh -> en, as ReST's WMT20 Zh-En
    assert [(row["source"], row["target"]) for row in rows] == [
        ("今天天气很好。", "The weather is nice today."),
        ("我喜欢读书。", "I like reading books."),
    ]


def test_directory_picks_split_files(tmp_path):
    data = tmp_path / "corpus"
    data.mkdir()
    shutil.copy(IWSLT, data / "train.jsonl")
    write_jsonl(data / "validation.jsonl", [{"translation": {"de": "Hallo.", "en": "Hello."}}])
    cache = str(tmp_path / "cache")
    assert len(translation.load_iwslt2017(str(data), "train", cache_dir=cache)) == 3
    assert translation.load_iwslt2017(str(data), "validation", cache_dir=cache)[0]["target"] == "Hello."
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        translation.load_iwslt2017(str(data), "test", cache_dir=cache)


def test_malformed_rows_name_file_row_and_key(tmp_path):
    cache = str(tmp_path / "cache")
    missing_lang = write_jsonl(
        tmp_path / "a.jsonl",
        [{"translation": {"de": "Ja.", "en": "Yes."}}, {"translation": {"de": "Nein.", "fr": "Non."}}],
    )
    with pytest.raises(ValueError, match=r"a.jsonl row 1: 'translation' has no 'en' key \(has \['de', 'fr'\]\)"):
        translation.load_iwslt2017(missing_lang, cache_dir=cache)
    no_column = write_jsonl(tmp_path / "b.jsonl", [{"de": "Ja.", "en": "Yes."}])
    with pytest.raises(ValueError, match=r"b.jsonl row 0: column 'translation' is missing"):
        translation.load_iwslt2017(no_column, cache_dir=cache)
    empty = write_jsonl(tmp_path / "c.jsonl", [{"translation": {"de": " ", "en": "Yes."}}])
    with pytest.raises(ValueError, match=r"c.jsonl row 0: 'translation.de' is empty"):
        translation.load_iwslt2017(empty, cache_dir=cache)
    with pytest.raises(ValueError, match=r"wmt19_zh_en.parquet row 0: 'translation' has no 'de' key"):
        translation.load_wmt(WMT, source_lang="de", cache_dir=cache)


# --- chrF / BLEU rewards -------------------------------------------------------------------------------------------


def test_reward_matches_sacrebleu_sentence_scores():
    references = {"p1": "mio gro vau pik vid", "p2": ["the cat sat on the mat", "the cat sat on a mat"]}
    prompts = ["p1", "p1", "p2", "p1"]
    completions = [" mio gro vau pik vid", " mio pik vau pik vid", "the cat sat on a mat", "xyz"]
    chrf = TranslationReward(references, metric="chrf")(prompts, completions)
    bleu = TranslationReward(references, metric="bleu")(prompts, completions)
    refs = [[references["p1"]], [references["p1"]], references["p2"], [references["p1"]]]
    expected_chrf = [sacrebleu.sentence_chrf(c.strip(), r).score / 100 for c, r in zip(completions, refs)]
    expected_bleu = [sacrebleu.sentence_bleu(c.strip(), r).score / 100 for c, r in zip(completions, refs)]
    np.testing.assert_allclose(chrf, expected_chrf, rtol=1e-6)
    np.testing.assert_allclose(bleu, expected_bleu, rtol=1e-6)
    assert chrf.dtype == np.float32 and chrf.shape == (4,)
    assert chrf[0] == 1.0 and bleu[0] == 1.0  # exact match (the leading space is ignored)
    assert chrf[3] == 0.0  # no character n-gram in common
    assert 0.0 < chrf[1] < 1.0 and bleu[1] < chrf[1]  # one wrong word: BLEU loses more than chrF
    assert chrf[2] == 1.0  # the second reference matches
    assert sentence_score("chrf", "the cat sat on a mat", ["the cat sat on the mat"]) < 0.7


def test_reward_errors_name_prompt_and_metric():
    reward = TranslationReward({"known": "x"})
    with pytest.raises(KeyError, match="prompt 1 'unknown' has no reference"):
        reward(["known", "unknown"], ["x", "y"])
    with pytest.raises(ValueError, match="unknown translation metric 'ter'"):
        TranslationReward({}, metric="ter")
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        reward(["known", "known"], ["x"])
