"""Greedy decoding against `transformers`' own `generate(do_sample=False)`."""

import numpy as np
import pytest

from rlaif_jax import models, sampling

NEW_TOKENS = 32

QUESTIONS = [  # varied lengths, so the batch is genuinely left-padded
    "Hi!",
    "What is 2 + 2?",
    "Name the capital of Japan.",
    "Give me three tips for staying focused while studying at home.",
    "Translate 'good morning' into French and Spanish.",
    "Write a short poem about autumn leaves falling in a quiet park at dusk, with a rhyme in every second line.",
    "Explain in simple terms why the sky is blue.",
    "List the planets of the solar system in order from the sun, and say which one is the largest.",
    "What is a prime number? Give two examples.",
]


def _ours_up_to_stop(out, row: int) -> list[int]:
    return out.tokens[row, : out.lengths[row]].tolist()


@pytest.mark.slow
def test_smollm2_greedy_matches_hf_generate(smollm2, smollm2_hf, chat_prompt_ids, record_diff, hf_greedy_fn):
    prompts = [chat_prompt_ids(smollm2.tokenizer, question) for question in QUESTIONS]
    assert len({len(p) for p in prompts}) >= 6
    eos = smollm2.config.eos_token_ids[0]
    assert smollm2_hf.generation_config.eos_token_id in (eos, [eos])
    ours = sampling.generate(smollm2, prompts, max_new_tokens=NEW_TOKENS, rng=None, temperature=0.0)
    assert ours.tokens.shape == (len(prompts), NEW_TOKENS)
    mismatches, finished = [], 0
    for row, prompt in enumerate(prompts):
        reference = hf_greedy_fn(smollm2_hf, prompt, NEW_TOKENS, eos)
        mine = _ours_up_to_stop(ours, row)
        finished += reference[-1] == eos
        if mine != reference:
            mismatches.append((QUESTIONS[row], mine, reference))
        # Our texts are the decoded completions without special tokens.
        assert ours.texts[row] == smollm2.tokenizer.decode(reference, skip_special_tokens=True)
    record_diff("SmolLM2 greedy rows differing from HF", len(mismatches), 0)
    assert not mismatches, mismatches
    record_diff("SmolLM2 rows ending in EOS before 32 tokens", finished, 1, ">=")
    assert finished >= 1  # at least one short answer exercised the EOS cut-off
    assert np.all(ours.logprobs[ours.tokens != smollm2.config.pad_token_id] <= 0)


@pytest.mark.parametrize("variant", ["llama_untied", "qwen3_qk_norm", "mistral_window", "gemma3"])
def test_tiny_greedy_matches_hf_generate(variant, tiny_hf_llama, hf_greedy_fn):
    """32 greedy tokens after prompts of 1 to 40 tokens, through our KV cache (and, for Mistral, its sliding window
    of 8 over the cache; for Gemma 3, sliding and full layers) against HF's `generate`."""
    path, hf_model = tiny_hf_llama(variant, seed=5)
    hf_model.generation_config.eos_token_id = None  # no EOS on either side: compare all 32 tokens
    hf_model.generation_config.pad_token_id = 0
    lm = models.load(path)
    assert lm.tokenizer is None
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 128, size=n).tolist() for n in (1, 2, 5, 9, 14, 20, 31, 40)]
    ours = sampling.generate(lm, prompts, max_new_tokens=NEW_TOKENS, rng=None, temperature=0.0, stop_tokens=[])
    assert ours.texts is None
    np.testing.assert_array_equal(ours.lengths, NEW_TOKENS)
    for row, prompt in enumerate(prompts):
        reference = hf_greedy_fn(hf_model, prompt, NEW_TOKENS)
        assert len(reference) == NEW_TOKENS
        assert ours.tokens[row].tolist() == reference, f"prompt {row} (length {len(prompt)})"
    assert len({tuple(row) for row in ours.tokens.tolist()}) == len(prompts)
