"""A tiny random Llama with the byte tokenizer (259 ids), ours and HF's: prompts of a few hundred bytes, fast."""

import pytest

from rlaif_jax import models
from rlaif_jax.models.byte_tokenizer import byte_tokenizer


@pytest.fixture
def byte_lm(tiny_hf_llama):
    """(LanguageModel with the byte tokenizer, the same weights as an HF torch model). Context 4096 bytes."""
    directory, hf_model = tiny_hf_llama(
        "llama_untied",
        seed=3,
        vocab_size=259,
        bos_token_id=257,
        eos_token_id=258,
        pad_token_id=258,
        max_position_embeddings=4096,
    )
    lm = models.load(directory, scan_layers=False).replace(tokenizer=byte_tokenizer())
    return lm, hf_model
