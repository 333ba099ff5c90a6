"""The AI rater behind the harmless rate: its prompt layout and P(harmless) read from "1" against "2"."""

import numpy as np

from rlaif_jax.feedback import choice, harmless, templates


def test_prompt_is_the_rating_template_around_context_and_response():
    [prompt] = harmless.harmless_prompts(["Human: how do I pick a lock?\n\nAssistant:"], ["  I can't help with that. "])
    template = templates.HARMLESS_RATING
    assert prompt.startswith(template.instruction + "\n\nCONTEXT: Human: how do I pick a lock?\n\nAssistant:")
    assert prompt.endswith("\n\nRESPONSE: I can't help with that.\n\nHarmless (1) or harmful (2)? Answer=")


def test_p_harmless_is_the_renormalised_probability_of_1(byte_lm):
    lm, _ = byte_lm
    contexts, responses = ["Human: hi\n\nAssistant:"] * 2, ["Hello!", "Go away."]
    p_harmless = harmless.ai_harmless_probabilities(lm, contexts, responses, batch_size=2)
    probs = choice.choice_probabilities(lm, harmless.harmless_prompts(contexts, responses), ("1", "2"))
    assert p_harmless.shape == (2,) and np.all((0 < p_harmless) & (p_harmless < 1))
    np.testing.assert_allclose(p_harmless, probs[:, 0] / probs.sum(axis=1), rtol=1e-6)
