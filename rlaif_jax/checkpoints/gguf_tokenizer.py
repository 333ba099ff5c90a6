"""The tokenizer a GGUF file describes, built from its metadata with `gguf` and `tokenizers` (no torch).

transformers' own GGUF path (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`) reads the file through a
torch-only reader, so a machine without torch cannot use it. This module reads the same fields
(`tokenizer.ggml.*`, `tokenizer.chat_template`) and builds the same fast tokenizer: a byte-level BPE for
`tokenizer.ggml.model = 'gpt2'` (SmolLM2, Llama 3, Qwen2), or Gemma's sentencepiece BPE with byte fallback for
`'llama'` in a Gemma file, with the file's control tokens as special tokens.
"""

from __future__ import annotations

import os
from typing import Any

import tokenizers
import transformers
from transformers.convert_slow_tokenizer import bytes_to_unicode

# GGUF token types (llama.cpp `llama_token_type`).
_CONTROL, _USER_DEFINED = 3, 4

# `tokenizer.ggml.pre` -> the split regex its merges were learned with (llama.cpp `llama-vocab.cpp`). A file whose
# pre-tokenizer is not listed splits with GPT-2's regex (tokenizers' ByteLevel(use_regex=True)).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE_TOKENIZER_SPLITS = {
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
}
# Not listed, as in transformers: llama.cpp's 'smollm'/'starcoder' also isolate each digit first. That differs from
# GPT-2's regex only for a run of whitespace before a digit ('   2024'); we follow transformers' GGUF tokenizer.

SUPPORTED_TOKENIZER_MODELS = ("gpt2", "llama (in Gemma files)")
_GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3")


def read_tokenizer_metadata(path: str) -> dict[str, Any]:
    """The `tokenizer.*` fields of the GGUF file at `path` (vocabulary, merges, token types, ids, chat template),
    and `general.architecture`."""
    from rlaif_jax.checkpoints.gguf import gguf_reader

    reader = gguf_reader(path)
    wanted = lambda name: name.startswith("tokenizer.") or name == "general.architecture"  # noqa: E731
    return {name: field.contents() for name, field in reader.fields.items() if wanted(name)}


def tokenizer_from_gguf(path: str) -> transformers.PreTrainedTokenizerFast:
    """A fast HF tokenizer (chat template included) for the GGUF file at `path`.

    Raises:
      ValueError naming the file and `tokenizer.ggml.model` when the file's tokenizer model is not supported.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file not found: {path}")
    metadata = read_tokenizer_metadata(path)
    model_type = metadata.get("tokenizer.ggml.model")
    sentencepiece = model_type == "llama" and metadata.get("general.architecture") in _GEMMA_ARCHITECTURES
    if model_type != "gpt2" and not sentencepiece:
        raise ValueError(
            f"{path}: tokenizer.ggml.model={model_type!r} is not supported (architecture "
            f"{metadata.get('general.architecture')!r}); supported: {SUPPORTED_TOKENIZER_MODELS}"
        )
    tokens = list(metadata["tokenizer.ggml.tokens"])
    token_types = list(metadata.get("tokenizer.ggml.token_type") or [0] * len(tokens))
    if sentencepiece:
        tokens = [_GEMMA_SPACE * len(t) if " " in t and not t.strip() else t for t in tokens]
        backend = _gemma_sentencepiece_bpe(tokens)
        alphabet = None  # every control token of a sentencepiece vocabulary is a real token
    else:
        backend = _byte_level_bpe(tokens, metadata, path)
        alphabet = set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    # A control token spelled outside the byte alphabet is a llama.cpp mislabel of an ordinary token: adding it
    # as special would give it a second id (transformers skips these too).
    special = [
        tokenizers.AddedToken(token, normalized=False, special=True)
        for token, kind in zip(tokens, token_types)
        if kind == _CONTROL and (alphabet is None or set(token) <= alphabet)
    ]
    user_defined = [
        tokenizers.AddedToken(token, normalized=False, special=False)
        for token, kind in zip(tokens, token_types)
        if kind == _USER_DEFINED
    ]
    backend.add_special_tokens(special)
    if user_defined:
        backend.add_tokens(user_defined)

    def token_named(key: str) -> str | None:
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        return None if token_id is None else tokens[int(token_id)]

    bos_token = token_named("bos_token_id")
    if metadata.get("tokenizer.ggml.add_bos_token", False) and bos_token is not None:
        backend.post_processor = tokenizers.processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A {bos_token} $B",
            special_tokens=[(bos_token, tokens.index(bos_token))],
        )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=token_named("eos_token_id"),
        unk_token=token_named("unknown_token_id"),
        pad_token=token_named("padding_token_id"),
        chat_template=metadata.get("tokenizer.chat_template"),
        name_or_path=path,
    )


def _byte_level_bpe(tokens: list[str], metadata: dict[str, Any], path: str) -> tokenizers.Tokenizer:
    """GPT-2-style byte-level BPE from the file's vocabulary and merges."""
    merges_text = metadata.get("tokenizer.ggml.merges")
    if merges_text is None:
        raise ValueError(f"{path}: a 'gpt2' tokenizer needs tokenizer.ggml.merges, which the file lacks")
    byte_chars = set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    spelling = bytes_to_unicode()
    vocab = {}
    for index, token in enumerate(tokens):
        if not set(token) <= byte_chars:  # a token stored as raw text (e.g. '<think>'): respell it byte-level
            token = "".join(spelling[byte] for byte in token.encode("utf-8"))
        vocab.setdefault(token, index)
    merges = [tuple(merge.split(" ", 1)) for merge in merges_text]
    backend = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    pre = metadata.get("tokenizer.ggml.pre")
    byte_level_split = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre in _PRE_TOKENIZER_SPLITS:
        split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(_PRE_TOKENIZER_SPLITS[pre]), behavior="isolated")
        backend.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([split, byte_level_split])
    else:
        backend.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = tokenizers.decoders.ByteLevel()
    return backend


_GEMMA_SPACE = "\u2581"  # sentencepiece's visible space


def _gemma_sentencepiece_bpe(tokens: list[str]) -> tokenizers.Tokenizer:
    """Gemma's tokenizer (transformers' `GemmaTokenizer`): sentencepiece BPE with byte fallback, spaces written as
    '▁'. A Gemma GGUF stores no merges; they are recovered from the vocabulary, ranked by position in the file
    (Gemma's scores do not follow its merge order), as transformers' GGUF loader does."""
    vocab = {token: index for index, token in enumerate(tokens)}
    merges = []
    for token, index in vocab.items():
        pairs = [(token[:k], token[k:]) for k in range(1, len(token)) if token[:k] in vocab and token[k:] in vocab]
        pairs.sort(key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
        merges.extend((left, right, -index) for left, right in pairs)
    merges.sort(key=lambda merge: (merge[2], len(merge[0]), len(merge[1])), reverse=True)
    model = tokenizers.models.BPE(
        vocab=vocab,
        merges=[(left, right) for left, right, _ in merges],
        unk_token="<unk>",
        fuse_unk=True,
        byte_fallback=True,
    )
    backend = tokenizers.Tokenizer(model)
    backend.normalizer = tokenizers.normalizers.Replace(" ", _GEMMA_SPACE)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Split(" ", behavior="merged_with_previous")
    backend.decoder = tokenizers.decoders.Sequence(
        [tokenizers.decoders.Replace(_GEMMA_SPACE, " "), tokenizers.decoders.ByteFallback(), tokenizers.decoders.Fuse()]
    )
    return backend
