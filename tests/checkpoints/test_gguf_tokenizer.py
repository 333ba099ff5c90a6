"""The GGUF tokenizer we build without torch encodes, decodes and templates exactly as transformers' GGUF path."""

import glob
import itertools
import json
import os

import gguf
import numpy as np
import pytest

from rlaif_jax.checkpoints import gguf_tokenizer
from rlaif_jax.feedback import templates

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "data", "fixtures")


def _fixture_strings() -> list[str]:
    """Every string value of the JSONL fixtures, whole and line by line."""
    strings = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.jsonl"))):
        with open(path) as f:
            for line in f:
                for value in json.loads(line).values():
                    if isinstance(value, str):
                        strings.append(value)
                        strings.extend(part for part in value.split("\n") if part)
    return strings


def _edge_strings() -> list[str]:
    """Digits, whitespace runs, contractions, accents, CJK, emoji, code and special tokens inside text."""
    pieces = [
        "Hello",
        " world",
        "2024",
        " 3.14159",
        "don't",
        " we'll",
        "naïve café",
        " 東京タワー",
        " 🙂👍🏽",
        "\t",
        "\n\n",
        "   ",
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "def f(x):\n    return x**2",
        " Straße",
        "!!!?",
    ]
    strings = ["".join(pair) for pair in itertools.permutations(pieces, 2)]
    return strings + pieces + ["", " ", "a" * 300, "1234567890" * 5, "ÅÄÖ åäö ñ ç ø", "\r\nwindows\r\nlines"]


def _template_strings() -> list[str]:
    """RLAIF labeler prompts (preambles, few-shot exemplars, CoT) and score prompts."""
    strings = []
    for name in templates.PAIRWISE_TEMPLATES:
        template = templates.pairwise_template(name)
        strings.append(
            templates.pairwise_body(template, "SUBREDDIT: r/cats\nPOST: the cat", "Summary A.", "Summary B.")
        )
    for name in templates.SCORE_TEMPLATES:
        strings.append(templates.score_prompt(templates.score_template(name), "Human: hi", "Hello there!"))
    return strings


STRINGS = _fixture_strings() + _edge_strings() + _template_strings()


@pytest.fixture(scope="module")
def tokenizers_pair(smollm2_path):
    """(ours from the GGUF metadata, transformers' from the same file through its torch reader)."""
    import transformers

    ours = gguf_tokenizer.tokenizer_from_gguf(smollm2_path)
    reference = transformers.AutoTokenizer.from_pretrained(
        os.path.dirname(smollm2_path), gguf_file=os.path.basename(smollm2_path)
    )
    return ours, reference


def test_enough_strings():
    assert len(STRINGS) >= 300, len(STRINGS)


def test_smollm2_encode_decode_match_transformers(tokenizers_pair):
    ours, reference = tokenizers_pair
    ours_ids = ours(STRINGS, add_special_tokens=True).input_ids
    reference_ids = reference(STRINGS, add_special_tokens=True).input_ids
    mismatches = [s for s, a, b in zip(STRINGS, ours_ids, reference_ids) if a != b]
    assert not mismatches, mismatches[:5]
    for ids in ours_ids[:: max(1, len(ours_ids) // 60)]:
        assert ours.decode(ids) == reference.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_smollm2_special_tokens_and_chat_template_match(tokenizers_pair):
    ours, reference = tokenizers_pair
    for name in ("bos_token", "eos_token", "pad_token", "unk_token", "eos_token_id", "pad_token_id", "bos_token_id"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert len(ours) == len(reference) == 49152
    assert ours.all_special_tokens == reference.all_special_tokens
    conversations = [[{"role": "user", "content": text}] for text in STRINGS[:40]] + [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ]
    ]
    for messages in conversations:
        for generation_prompt in (True, False):
            kwargs = dict(add_generation_prompt=generation_prompt, return_dict=False)
            assert ours.apply_chat_template(messages, tokenize=False, **kwargs) == reference.apply_chat_template(
                messages, tokenize=False, **kwargs
            )
            assert list(ours.apply_chat_template(messages, tokenize=True, **kwargs)) == list(
                reference.apply_chat_template(messages, tokenize=True, **kwargs)
            )


def test_save_pretrained_round_trip(tokenizers_pair, tmp_path):
    import transformers

    ours, _ = tokenizers_pair
    ours.save_pretrained(tmp_path)
    reread = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert reread(STRINGS[:50]).input_ids == ours(STRINGS[:50]).input_ids
    assert reread.chat_template == ours.chat_template


def _write_tiny_gguf(path, *, model="gpt2", add_bos=False, merges=True):
    """A GGUF holding only tokenizer metadata: bytes a..e, the merge 'a b', a control and a user-defined token."""
    writer = gguf.GGUFWriter(str(path), "llama")
    tokens = ["<|end|>", "a", "b", "c", "ab", "<tool>", "<bos>"]
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    writer.add_token_types([3, 1, 1, 1, 1, 4, 3])
    if merges:
        writer.add_token_merges(["a b"])
    writer.add_bos_token_id(6)
    writer.add_eos_token_id(0)
    writer.add_add_bos_token(add_bos)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}<|end|>{% endfor %}")
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_tiny_gguf_tokens_types_and_bos(tmp_path):
    path = tmp_path / "tiny.gguf"
    _write_tiny_gguf(path, add_bos=True)
    tokenizer = gguf_tokenizer.tokenizer_from_gguf(str(path))
    # 'ab' merges; '<tool>' (user-defined) and '<|end|>' (control) stay whole; the BOS flag prepends id 6.
    assert tokenizer("abc<tool>ab<|end|>").input_ids == [6, 4, 3, 5, 4, 0]
    assert tokenizer.eos_token == "<|end|>" and tokenizer.bos_token == "<bos>"
    assert tokenizer.decode([4, 3, 5, 0], skip_special_tokens=True) == "abc<tool>"
    assert tokenizer.apply_chat_template([{"role": "user", "content": "ab"}], tokenize=False) == "ab<|end|>"


def test_unsupported_tokenizer_model_names_the_key(tmp_path):
    path = tmp_path / "spm.gguf"
    _write_tiny_gguf(path, model="bert")
    with pytest.raises(ValueError, match=r"spm\.gguf: tokenizer\.ggml\.model='bert' is not supported"):
        gguf_tokenizer.tokenizer_from_gguf(str(path))


def test_missing_merges_names_the_file(tmp_path):
    path = tmp_path / "nomerges.gguf"
    _write_tiny_gguf(path, merges=False)
    with pytest.raises(ValueError, match=r"nomerges\.gguf: .*tokenizer\.ggml\.merges"):
        gguf_tokenizer.tokenizer_from_gguf(str(path))
