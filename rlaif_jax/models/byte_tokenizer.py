"""A byte-level HF tokenizer built in code, for the random-init `tiny` models (no download, 259 ids)."""

from __future__ import annotations

import tokenizers
import transformers
from transformers.convert_slow_tokenizer import bytes_to_unicode

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# The same ChatML layout as SmolLM2's template, so tiny and real runs format prompts alike.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Byte-level BPE without merges: ids 0..255 are bytes (GPT-2's byte-to-unicode map), 256.. the special tokens.

    eos = pad = '<|im_end|>' (258), as in SmolLM2-Instruct.
    """
    byte_to_unicode = bytes_to_unicode()
    vocab = {byte_to_unicode[byte]: byte for byte in range(256)}
    for offset, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = 256 + offset
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
    )
