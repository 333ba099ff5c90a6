"""Turning prompt text into token ids with a tokenizer's chat template."""

from __future__ import annotations

from typing import Any


def encode_prompt(tokenizer: Any, text: str, *, use_chat_template: bool, system: str | None = None) -> list[int]:
    """Token ids of `text` as a user turn followed by the assistant header (chat template), or as plain text."""
    if not use_chat_template:
        return list(tokenizer(text)["input_ids"])
    if tokenizer.chat_template is None:
        raise ValueError("use_chat_template=True but the tokenizer has no chat template")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
