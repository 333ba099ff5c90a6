"""Translation data: a synthetic language a tiny byte-level model learns on CPU, and IWSLT / WMT loaders (ReST §4).

The synthetic task translates five-word English sentences `ADJ NOUN VERB ADJ NOUN` ("big cat sees small dog") into
a made-up language with its own words, verb-final order and adjectives after their noun: `NOUN ADJ NOUN ADJ VERB`
("mio gro vau pik vid"). The rule is deterministic, so every source has one correct translation (the reference the
chrF / BLEU reward compares with). The parallel "corpus" is noisy, as crawled data is: each target word is replaced by
another word of its class with probability `noise`. A model fine-tuned on it imitates the noise, which leaves ReST
(Grow: sample, score; Improve: keep the best, fine-tune) room to climb, as the toy letters task does for RL.

The 2304 possible sentences are split once, by a fixed permutation, into disjoint train / valid / test pools.

The loaders read the Hugging Face schema of `iwslt2017` and `wmt14` / `wmt19` (one column
`translation: {"de": "...", "en": "..."}`) from the hub or from local JSONL / parquet files, and return rows
{'source', 'target', '_source'}; a malformed row raises naming the file, the row (0-based) and the key.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np

NOUNS = {"cat": "mio", "dog": "vau", "bird": "pip", "fish": "glu", "fox": "rav", "cow": "mu"}
ADJECTIVES = {"big": "gro", "small": "pik", "red": "ros", "old": "vek"}
VERBS = {"sees": "vid", "likes": "ama", "eats": "man", "chases": "kur"}
PROMPT_SUFFIX = " ="  # prompt = source + " =", response = " " + translation
SPLITS = ("train", "valid", "test")
SPLIT_SIZES = {"test": 256, "valid": 256}  # train: the remaining 1792 sentences
_POOL_SEED = 1234  # fixes the split of the sentence space; never changes with the sampling seed

IWSLT2017 = "IWSLT/iwslt2017"  # config e.g. "iwslt2017-de-en"
WMT14 = "wmt/wmt14"  # config e.g. "de-en"
WMT19 = "wmt/wmt19"  # config e.g. "zh-en"


def all_sentences() -> list[tuple[str, str, str, str, str]]:
    """Every English sentence of the grammar as (adj1, noun1, verb, adj2, noun2) words, in a fixed order (2304)."""
    return [
        (adj1, noun1, verb, adj2, noun2)
        for adj1 in ADJECTIVES
        for noun1 in NOUNS
        for verb in VERBS
        for adj2 in ADJECTIVES
        for noun2 in NOUNS
    ]


def translate(source: str) -> str:
    """The correct translation of an English sentence of the grammar; raises ValueError naming an unknown word or
    a sentence of the wrong shape."""
    words = source.split()
    if len(words) != 5:
        raise ValueError(f"{source!r}: expected 5 words 'ADJ NOUN VERB ADJ NOUN', got {len(words)}")
    adj1, noun1, verb, adj2, noun2 = words
    for word, lexicon, kind in (
        (adj1, ADJECTIVES, "adjective"),
        (noun1, NOUNS, "noun"),
        (verb, VERBS, "verb"),
        (adj2, ADJECTIVES, "adjective"),
        (noun2, NOUNS, "noun"),
    ):
        if word not in lexicon:
            raise ValueError(f"{source!r}: {word!r} is not a known {kind} (known: {sorted(lexicon)})")
    return " ".join([NOUNS[noun1], ADJECTIVES[adj1], NOUNS[noun2], ADJECTIVES[adj2], VERBS[verb]])


def translation_prompt(source: str) -> str:
    """The model's prompt for a source sentence: 'big cat sees small dog ='."""
    return source + PROMPT_SUFFIX


def split_sources(split: str) -> list[str]:
    """The English sentences of a split ('train': 1792, 'valid': 256, 'test': 256), disjoint across splits."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    sentences = [" ".join(words) for words in all_sentences()]
    order = np.random.default_rng(_POOL_SEED).permutation(len(sentences))
    test_end = SPLIT_SIZES["test"]
    valid_end = test_end + SPLIT_SIZES["valid"]
    bounds = {"test": (0, test_end), "valid": (test_end, valid_end), "train": (valid_end, len(sentences))}
    start, end = bounds[split]
    return [sentences[i] for i in order[start:end]]


def _noisy(translation: str, rng: np.random.Generator, noise: float) -> str:
    """Each word replaced, with probability `noise`, by a different word of the same class (position decides it)."""
    classes = (NOUNS, ADJECTIVES, NOUNS, ADJECTIVES, VERBS)  # the target word order
    words = translation.split()
    for position, lexicon in enumerate(classes):
        if rng.random() < noise:
            others = [word for word in lexicon.values() if word != words[position]]
            words[position] = others[rng.integers(len(others))]
    return " ".join(words)


def translation_rows(split: str, num_rows: int, *, seed: int, noise: float = 0.0) -> list[dict[str, str]]:
    """`num_rows` {'prompt', 'response', 'reference'} rows of a split: sources drawn (with replacement) from the
    split's pool, 'response' the corpus translation (" " + words, each word wrong with probability `noise`),
    'reference' the correct translation."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise={noise} must lie in [0, 1]")
    pool = split_sources(split)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        source = pool[rng.integers(len(pool))]
        reference = translate(source)
        rows.append(
            {
                "prompt": translation_prompt(source),
                "response": " " + _noisy(reference, rng, noise),
                "reference": reference,
            }
        )
    return rows


def references_by_prompt(split: str) -> dict[str, str]:
    """{prompt: correct translation} for every source of a split (what the chrF / BLEU reward looks up)."""
    return {translation_prompt(source): translate(source) for source in split_sources(split)}


# --- Published corpora in the Hugging Face `translation` schema ---------------------------------------------------


def translation_pair(record: dict[str, Any], source_lang: str, target_lang: str) -> dict[str, str]:
    """One `{"translation": {LANG: text, ...}}` record -> {'source', 'target'}; raises ValueError naming the
    missing column or language key."""
    pair = record.get("translation")
    if not isinstance(pair, dict):
        raise ValueError(f"column 'translation' is missing or not an object (got {type(pair).__name__})")
    texts = {}
    present = sorted(key for key, value in pair.items() if value is not None)  # Arrow fills absent keys with None
    for lang in (source_lang, target_lang):
        if lang not in present:
            raise ValueError(f"'translation' has no {lang!r} key (has {present})")
        if not isinstance(pair[lang], str) or not pair[lang].strip():
            raise ValueError(f"'translation.{lang}' is empty or not a string")
        texts[lang] = pair[lang].strip()
    return {"source": texts[source_lang], "target": texts[target_lang]}


_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".gz": "json", ".parquet": "parquet"}


def _local_files(path: str, split: str) -> list[str]:
    """`path` itself, or the JSON(L)[.gz] / parquet files under directory `path` whose name starts with `split`."""
    if os.path.isfile(path):
        return [path]
    patterns = [f"**/{split}*{ext}" for ext in (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".parquet")]
    files = sorted({f for pattern in patterns for f in glob.glob(os.path.join(path, pattern), recursive=True)})
    if not files:
        raise FileNotFoundError(f"{path}: no {split}*.json[l][.gz] or {split}*.parquet files for split {split!r}")
    return files


def _records(source: str, split: str, *, config_name: str | None, cache_dir: str | None):
    """Yields (where, index, record) of a local file / directory, or of the hub dataset `source`."""
    import datasets

    if os.path.exists(source):
        for path in _local_files(source, split):
            builder = _LOCAL_FORMATS.get(os.path.splitext(path)[1])
            if builder is None:
                raise ValueError(f"{path}: expected a .json, .jsonl, .json.gz or .parquet file")
            try:
                dataset = datasets.load_dataset(builder, data_files=path, split="train", cache_dir=cache_dir)
            except Exception as error:  # Arrow / JSON / parquet errors: name the file, keep the cause
                raise ValueError(f"{path}: could not read as {builder}: {error}") from error
            for index, record in enumerate(dataset):
                yield path, index, record
        return
    dataset = datasets.load_dataset(source, config_name, split=split, cache_dir=cache_dir)
    for index, record in enumerate(dataset):
        yield f"{source}[{split}]", index, record


def load_translation_pairs(
    source: str,
    split: str = "train",
    *,
    source_lang: str,
    target_lang: str,
    config_name: str | None = None,
    cache_dir: str | None = None,
) -> list[dict[str, str]]:
    """{'source', 'target', '_source'} rows of a corpus in the `translation` schema: a hub name with its
    `config_name` (e.g. IWSLT2017 "iwslt2017-de-en", WMT14 "de-en", WMT19 "zh-en"), or a local JSON(L) / parquet
    file or directory of `split*` files. Raises ValueError naming the file and row of a malformed record."""
    rows = []
    for where, index, record in _records(source, split, config_name=config_name, cache_dir=cache_dir):
        try:
            row = translation_pair(record, source_lang, target_lang)
        except ValueError as error:
            raise ValueError(f"{where} row {index}: {error}") from error
        row["_source"] = f"{where} row {index}"
        rows.append(row)
    if not rows:
        raise ValueError(f"{source} [{split}]: no rows")
    return rows


def load_iwslt2017(
    source: str = IWSLT2017, split: str = "train", *, source_lang: str = "de", target_lang: str = "en", **kwargs
) -> list[dict[str, str]]:
    """IWSLT 2017 pairs (hub splits 'train', 'validation', 'test'); the hub config is 'iwslt2017-SRC-TGT'. ReST
    used IWSLT 2014 De->En, which has the same schema."""
    config_name = None if os.path.exists(source) else f"iwslt2017-{source_lang}-{target_lang}"
    return load_translation_pairs(
        source, split, source_lang=source_lang, target_lang=target_lang, config_name=config_name, **kwargs
    )


def load_wmt(
    source: str = WMT19, split: str = "train", *, source_lang: str = "zh", target_lang: str = "en", **kwargs
) -> list[dict[str, str]]:
    """WMT14 / WMT19 pairs (hub splits 'train', 'validation'); the hub config names the pair, e.g. 'zh-en' (ReST
    used WMT 2020 Zh->En). Hub configs list the pair in one fixed order ('de-en', 'zh-en'): the language other
    than English comes first."""
    if os.path.exists(source):
        config_name = None
    else:
        other = source_lang if target_lang == "en" else target_lang
        config_name = f"{other}-en"
    return load_translation_pairs(
        source, split, source_lang=source_lang, target_lang=target_lang, config_name=config_name, **kwargs
    )
