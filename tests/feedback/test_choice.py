"""choice_probabilities against HF transformers (same prompt ids + choice ids), batching invariance, bad input."""

import numpy as np
import pytest
import torch

from rlaif_jax import models, sharding
from rlaif_jax.feedback import choice_probabilities
from rlaif_jax.feedback.choice import (
    choice_logprobs,
    encode_choices,
    exclusive_choice_probabilities,
    minimal_extensions,
    scoring_contexts,
)
from rlaif_jax.feedback.templates import labeler_context, pairwise_prompt, pairwise_template

PROMPTS = [
    "Text - my cat wakes me at 3am\nSummary 1 - cat wakes me\nSummary 2 - I own a table\n\nPreferred Summary=",
    "SCORE: ",
    "A longer prompt, to land in another length bucket than the others. " * 3 + "Answer=",
]
CHOICES = ("1", "2", "10", "yes", "no way")


def hf_choice_probabilities(hf_model, tokenizer, prompts, choices) -> np.ndarray:
    """The reference: one HF forward per (prompt, choice) over tokenizer(prompt) + tokenizer(choice, no specials),
    float64 log-softmax, summed over the choice tokens; a choice's mass minus that of the choices that directly
    extend it (CHOICES: "1" minus "10"), renormalised over choices."""
    all_ids = [list(tokenizer(choice, add_special_tokens=False)["input_ids"]) for choice in choices]
    result = []
    for prompt in prompts:
        prompt_ids = list(tokenizer(prompt)["input_ids"])
        logps = []
        for choice_ids in all_ids:
            with torch.no_grad():
                logits = hf_model(torch.tensor([prompt_ids + choice_ids])).logits[0].double()
            logprobs = torch.log_softmax(logits, dim=-1)
            logps.append(sum(float(logprobs[len(prompt_ids) - 1 + j, t]) for j, t in enumerate(choice_ids)))
        weights = np.exp(np.array(logps))
        exclusive = weights.copy()
        for c, ids in enumerate(all_ids):  # in CHOICES no choice has two nested extensions
            exclusive[c] -= sum(w for e, w in zip(all_ids, weights) if len(e) > len(ids) and e[: len(ids)] == ids)
        result.append(exclusive / exclusive.sum())
    return np.array(result)


def test_minimal_extensions_and_exclusive_probabilities_by_hand():
    ids = [[1], [1, 0], [1, 0, 0], [2]]  # "1", "10", "100", "2"
    assert minimal_extensions(ids) == [[1], [2], [], []]
    # p("1") = 0.5 of which 0.3 goes on to "10" and 0.1 of that to "100"; p("2") = 0.2.
    probabilities = exclusive_choice_probabilities(np.log([[0.5, 0.3, 0.1, 0.2]]), ids)
    np.testing.assert_allclose(probabilities, [[0.2 / 0.7, 0.2 / 0.7, 0.1 / 0.7, 0.2 / 0.7]], atol=1e-12)
    # A labeler sure of "10" ("1" then certainly "0") gives "1" no mass as an answer of its own.
    sure_of_ten = exclusive_choice_probabilities(np.log([[1.0, 1.0 - 1e-9, 1e-9, 1e-12]]), ids[:2] + ids[3:] + [[3]])
    assert sure_of_ten[0, 1] > 0.999 and sure_of_ten[0, 0] < 1e-6
    # Without prefix relations: the plain softmax.
    logits = np.array([[0.3, -1.2, 2.0]])
    np.testing.assert_allclose(
        exclusive_choice_probabilities(logits, [[1], [2], [3, 4]]), np.exp(logits) / np.exp(logits).sum(), atol=1e-12
    )


def test_matches_hf_on_tiny_model_with_multi_token_choices(byte_lm, record_diff):
    lm, hf_model = byte_lm
    ours = choice_probabilities(lm, PROMPTS, CHOICES, batch_size=2)  # 2 batches, two length buckets
    reference = hf_choice_probabilities(hf_model, lm.tokenizer, PROMPTS, CHOICES)
    assert ours.shape == (3, 5)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-12)
    diff = record_diff("max |P_ours - P_hf| tiny, 5 choices", np.abs(ours - reference).max(), 1e-5)
    assert diff <= 1e-5
    assert reference.min() < 0.05 < reference.max()  # the random model does not give a uniform answer


def test_batching_and_padding_do_not_change_probabilities(byte_lm):
    lm, _ = byte_lm
    together = choice_probabilities(lm, PROMPTS, CHOICES, batch_size=8)
    alone = np.concatenate([choice_probabilities(lm, [p], CHOICES, batch_size=1) for p in PROMPTS])
    np.testing.assert_allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize("mesh_shape", [dict(data=2, fsdp=2, tensor=2), dict(data=1, fsdp=8, tensor=1)])
def test_sharded_model_gives_the_one_device_result(byte_lm, tiny_hf_llama, mesh_shape):
    lm, _ = byte_lm
    directory = tiny_hf_llama(
        "llama_untied",
        seed=3,
        vocab_size=259,
        bos_token_id=257,
        eos_token_id=258,
        pad_token_id=258,
        max_position_embeddings=4096,
    )[0]
    sharded = models.load(directory, mesh=sharding.make_mesh(**mesh_shape)).replace(tokenizer=lm.tokenizer)
    np.testing.assert_allclose(
        choice_probabilities(sharded, PROMPTS, CHOICES), choice_probabilities(lm, PROMPTS, CHOICES), atol=1e-6
    )


def test_logprobs_of_a_single_token_choice_are_the_next_token_logprobs(byte_lm):
    lm, hf_model = byte_lm
    ids = list(lm.tokenizer(PROMPTS[1])["input_ids"])
    ours = choice_logprobs(lm, [ids], [[ord("7")], [ord("8")]])
    with torch.no_grad():
        reference = torch.log_softmax(hf_model(torch.tensor([ids])).logits[0, -1].double(), dim=-1)
    np.testing.assert_allclose(ours[0], [float(reference[ord("7")]), float(reference[ord("8")])], atol=1e-5)


@pytest.mark.parametrize(
    "choice_ids, contexts, context_of_choice",
    [
        ([[1], [2]], [()], [0, 0]),  # single tokens: one pass over the prompt
        ([[1], [2], [1, 0]], [(1,)], [0, 0, 0]),  # "1".."10" with "10" = "1", "0": one pass over prompt + "1"
        ([[5, 6, 7], [5, 6], [8, 9], [4]], [(5, 6), (8,)], [0, 0, 1, 0]),
    ],
)
def test_scoring_contexts(choice_ids, contexts, context_of_choice):
    assert scoring_contexts(choice_ids) == (contexts, context_of_choice)


def test_bad_input_raises(byte_lm):
    lm, _ = byte_lm
    with pytest.raises(ValueError, match="distinct"):
        encode_choices(lm.tokenizer, ["1", "1"])
    with pytest.raises(ValueError, match="at least two"):
        encode_choices(lm.tokenizer, ["1"])
    with pytest.raises(ValueError, match="non-empty"):
        encode_choices(lm.tokenizer, ["1", ""])
    with pytest.raises(ValueError, match="tokenizer"):
        choice_probabilities(lm.replace(tokenizer=None), ["x"])
    with pytest.raises(ValueError, match="prompt 1 has 4097 tokens"):
        choice_probabilities(lm, ["ok", "x" * 4097])
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        choice_logprobs(lm, [[]], [[1], [2]])


@pytest.mark.slow
def test_smollm2_matches_hf_on_a_labeler_prompt(smollm2, smollm2_hf, record_diff):
    """The Done-when check: SmolLM2 choice probabilities equal HF transformers' on the same text (<= 1e-3)."""
    template = pairwise_template("summarize_base")
    context = labeler_context(
        "summarize", "SUBREDDIT: r/cats\nTITLE: Cat at 3am\nPOST: My cat knocks things over at 3am. Help?\nTL;DR:"
    )
    prompts = [
        pairwise_prompt(template, context, "Cat knocks things over at night; how to stop it?", "I have a cat."),
        pairwise_prompt(template, context, "I have a cat.", "Cat knocks things over at night; how to stop it?"),
        "Rate the summary from 1 to 10.\nSUMMARY: The cat wakes me up.\nSCORE: ",
    ]
    for choices in (("1", "2"), tuple(str(i) for i in range(1, 11))):
        ours = choice_probabilities(smollm2, prompts, choices)
        reference = hf_choice_probabilities(smollm2_hf, smollm2.tokenizer, prompts, choices)
        diff = record_diff(f"max |P_ours - P_hf| SmolLM2, {len(choices)} choices", np.abs(ours - reference).max(), 1e-3)
        assert diff <= 1e-3
