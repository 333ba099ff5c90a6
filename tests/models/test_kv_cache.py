"""KV-cache decoding and `sampling.generate` against plain full forwards on a tiny random model."""

import functools

import jax
import numpy as np
import pytest

from rlaif_jax import models, sampling

PROMPTS = [  # lengths 3, 7, 11: left-padded together, rows get 13, 9 and 5 pad slots in the 16-token bucket
    [5, 17, 99],
    [3, 44, 12, 90, 61, 7, 120],
    [8, 8, 31, 77, 100, 4, 56, 19, 23, 71, 9],
]
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def lm(make_tiny_lm):
    return make_tiny_lm(seed=3)


@functools.partial(jax.jit, static_argnums=0)
def _forward(module, params, tokens):
    return module.apply({"params": params}, tokens)


@functools.partial(jax.jit, static_argnums=0)
def _forward_masked(module, params, tokens, attention_mask):
    return module.apply({"params": params}, tokens, attention_mask=attention_mask)


@functools.partial(jax.jit, static_argnums=0)
def _cached_forward(module, params, tokens, cache):
    return module.apply({"params": params}, tokens, cache, method=module.forward_with_cache)


def _full_logprobs(lm, sequence) -> np.ndarray:
    """log_softmax of a full, unpadded, cache-free forward over `sequence`: [len(sequence), vocab]."""
    logits = _forward(lm.module, lm.params, np.asarray([sequence], np.int32))[0]
    return np.asarray(jax.nn.log_softmax(logits, axis=-1))


def _greedy(lm, prompts, **kwargs):
    kwargs.setdefault("stop_tokens", [])
    return sampling.generate(lm, prompts, max_new_tokens=NEW_TOKENS, rng=None, temperature=0.0, **kwargs)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_cached_decode_equals_full_forward(scan_layers, make_tiny_lm, record_diff):
    lm = make_tiny_lm(seed=3, scan_layers=scan_layers)
    prompt = PROMPTS[1]
    cache = models.init_cache(lm.config, batch_size=1, max_length=32)
    logits, cache = _cached_forward(lm.module, lm.params, np.asarray([prompt], np.int32), cache)
    full = np.asarray(_forward(lm.module, lm.params, np.asarray([prompt], np.int32)))
    worst = record_diff("prefill logits max|cached - full|", np.abs(np.asarray(logits) - full).max(), 1e-5)
    assert worst <= 1e-5
    sequence = list(prompt)
    next_token = int(np.argmax(logits[0, -1]))
    step_diffs, generated = [], []
    for _ in range(NEW_TOKENS):
        sequence.append(next_token)
        generated.append(next_token)
        logits, cache = _cached_forward(lm.module, lm.params, np.asarray([[next_token]], np.int32), cache)
        assert int(cache["index"]) == len(sequence)
        # The reference: a cache-free forward over the whole prefix so far, right-padded to one length (masked, and
        # after the last real token anyway) so that it compiles once.
        padded = np.zeros((1, len(prompt) + NEW_TOKENS), np.int32)
        padded[0, : len(sequence)] = sequence
        mask = np.arange(padded.shape[1])[None] < len(sequence)
        full_last = np.asarray(_forward_masked(lm.module, lm.params, padded, mask))[0, len(sequence) - 1]
        step_diffs.append(np.abs(np.asarray(logits[0, -1]) - full_last).max())
        assert int(np.argmax(logits[0, -1])) == int(np.argmax(full_last))
        next_token = int(np.argmax(full_last))
    # And the unpadded forward over the final sequence agrees at every generated position.
    final = np.asarray(_forward(lm.module, lm.params, np.asarray([sequence], np.int32)))[0]
    np.testing.assert_array_equal(final[len(prompt) - 1 : -1].argmax(-1), generated)
    record_diff("decode-step logits max|cached - full|", max(step_diffs), 1e-5)
    np.testing.assert_array_less(step_diffs, 1e-5)
    assert len(set(generated)) >= 4  # a real continuation, not one token repeated
    assert (
        np.asarray(cache["valid"])[0, : len(sequence)].all()
        and not np.asarray(cache["valid"])[0, len(sequence) :].any()
    )


def test_chunked_prefill_equals_one_shot(lm, record_diff):
    """Feeding a sequence through the cache in chunks of 5, 1 and 6 tokens gives the full forward's logits."""
    sequence = PROMPTS[2] + PROMPTS[0][:1]  # 12 tokens
    full = np.asarray(_forward(lm.module, lm.params, np.asarray([sequence], np.int32)))[0]
    cache = models.init_cache(lm.config, batch_size=1, max_length=16)
    pieces, start = [], 0
    for size in (5, 1, 6):
        chunk = np.asarray([sequence[start : start + size]], np.int32)
        logits, cache = lm.module.apply({"params": lm.params}, chunk, cache, method=lm.module.forward_with_cache)
        pieces.append(np.asarray(logits)[0])
        start += size
    diff = record_diff("chunked prefill logits max|cached - full|", np.abs(np.concatenate(pieces) - full).max(), 1e-5)
    assert diff <= 1e-5


def test_left_padded_batch_equals_each_prompt_alone(lm, record_diff):
    batch = _greedy(lm, PROMPTS)
    assert batch.tokens.shape == batch.logprobs.shape == (3, NEW_TOKENS)
    assert batch.texts is None  # random-init model, no tokenizer
    for row, prompt in enumerate(PROMPTS):
        alone = _greedy(lm, [prompt])
        np.testing.assert_array_equal(batch.tokens[row], alone.tokens[0])
        diff = record_diff(
            f"logprobs |batch - alone| prompt len {len(prompt)}",
            np.abs(batch.logprobs[row] - alone.logprobs[0]).max(),
            1e-5,
        )
        assert diff <= 1e-5
    assert len({tuple(row) for row in batch.tokens}) == 3


def test_generate_logprobs_equal_full_forward(lm, record_diff):
    out = _greedy(lm, PROMPTS)
    np.testing.assert_array_equal(out.lengths, NEW_TOKENS)  # no stop tokens: every row runs to the end
    np.testing.assert_array_equal(out.sampling_logprobs, 0.0)  # greedy
    worst = 0.0
    for row, prompt in enumerate(PROMPTS):
        generated = out.tokens[row].tolist()
        logprobs = _full_logprobs(lm, prompt + generated)
        # Token t of the completion is predicted at position len(prompt) - 1 + t.
        positions = np.arange(len(prompt) - 1, len(prompt) - 1 + NEW_TOKENS)
        expected = logprobs[positions, generated]
        worst = max(worst, np.abs(out.logprobs[row] - expected).max())
        np.testing.assert_allclose(out.logprobs[row], expected, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(generated, logprobs[positions].argmax(-1))  # greedy = argmax of the full forward
    record_diff("generate logprobs max|gen - full forward|", worst, 1e-4)


def test_stop_token_ends_row_with_padding(lm):
    free = _greedy(lm, PROMPTS)
    row0 = free.tokens[0].tolist()
    # Stop at the first token that row 0 emits for the first time at step >= 3.
    step = next(t for t in range(3, NEW_TOKENS) if row0[t] not in row0[:t])
    stop = row0[step]
    out = _greedy(lm, PROMPTS, stop_tokens=[stop])
    pad = lm.config.pad_token_id
    assert pad is not None and pad != stop
    np.testing.assert_array_equal(out.tokens[0, : step + 1], row0[: step + 1])  # the stop token itself is kept
    np.testing.assert_array_equal(out.tokens[0, step + 1 :], pad)
    np.testing.assert_array_equal(out.logprobs[0, step + 1 :], 0.0)
    np.testing.assert_array_equal(out.sampling_logprobs[0, step + 1 :], 0.0)
    assert np.all(out.logprobs[0, : step + 1] < 0)
    np.testing.assert_allclose(out.logprobs[0, : step + 1], free.logprobs[0, : step + 1], rtol=0, atol=1e-6)
    for row in range(len(PROMPTS)):
        tokens = free.tokens[row].tolist()
        expected_length = tokens.index(stop) + 1 if stop in tokens else NEW_TOKENS
        assert out.lengths[row] == expected_length
        np.testing.assert_array_equal(out.tokens[row, :expected_length], tokens[:expected_length])
        np.testing.assert_array_equal(out.tokens[row, expected_length:], pad)
    assert out.lengths[0] == step + 1


def test_default_stop_tokens_are_the_eos_ids(lm):
    """stop_tokens=None stops at config.eos_token_ids (here a token the model emits), [] never stops."""
    free = _greedy(lm, PROMPTS[:1])
    eos = int(free.tokens[0, 5])
    with_eos = lm.replace(config=lm.config.replace(eos_token_ids=(eos,)))
    out = sampling.generate(with_eos, PROMPTS[:1], max_new_tokens=NEW_TOKENS, rng=None, temperature=0.0)
    first = free.tokens[0].tolist().index(eos)
    assert out.lengths[0] == first + 1
    np.testing.assert_array_equal(out.tokens[0, : first + 1], free.tokens[0, : first + 1])


def test_num_samples_prompt_major(lm, record_diff):
    # 3 prompts fill a batch bucket of 4, so a padding row is also repeated (and must be dropped).
    out = sampling.generate(
        lm, PROMPTS, max_new_tokens=8, rng=jax.random.key(7), temperature=1.0, num_samples=3, stop_tokens=[]
    )
    for array in (out.tokens, out.logprobs, out.sampling_logprobs):
        assert array.shape == (9, 8)
    np.testing.assert_array_equal(out.lengths, 8)
    # Row r is a sample for prompt r // 3: its logprobs are those of its tokens after *that* prompt, not another.
    worst = 0.0
    for row in range(9):
        prompt, other = PROMPTS[row // 3], PROMPTS[(row // 3 + 1) % 3]
        tokens = out.tokens[row].tolist()
        expected = _full_logprobs(lm, prompt + tokens)[np.arange(len(prompt) - 1, len(prompt) + 7), tokens]
        worst = max(worst, np.abs(out.logprobs[row] - expected).max())
        wrong = _full_logprobs(lm, other + tokens)[np.arange(len(other) - 1, len(other) + 7), tokens]
        assert np.abs(out.logprobs[row] - wrong).max() > 1e-2
    record_diff("num_samples logprobs max|gen - full forward|", worst, 1e-4)
    assert worst <= 1e-4
    # At temperature 1 without filters the sampling distribution is the model's own.
    np.testing.assert_allclose(out.sampling_logprobs, out.logprobs, rtol=0, atol=1e-5)
    for prompt in range(3):
        assert len({tuple(row) for row in out.tokens[3 * prompt : 3 * prompt + 3].tolist()}) > 1  # samples differ
    # Greedy with num_samples repeats each prompt's greedy completion, prompt-major.
    greedy = sampling.generate(lm, PROMPTS, max_new_tokens=8, rng=None, temperature=0.0, num_samples=3, stop_tokens=[])
    single = sampling.generate(lm, PROMPTS, max_new_tokens=8, rng=None, temperature=0.0, stop_tokens=[])
    np.testing.assert_array_equal(greedy.tokens, np.repeat(single.tokens, 3, axis=0))
    np.testing.assert_allclose(greedy.logprobs, np.repeat(single.logprobs, 3, axis=0), rtol=0, atol=1e-6)


def test_max_new_tokens_off_bucket_and_array_prompts(lm):
    """max_new_tokens=5 (bucket 16) is a prefix of the 16-token run; an unpadded int array equals the lists."""
    full = _greedy(lm, PROMPTS)
    short = sampling.generate(lm, PROMPTS, max_new_tokens=5, rng=None, temperature=0.0, stop_tokens=[])
    assert short.tokens.shape == (3, 5)
    np.testing.assert_array_equal(short.tokens, full.tokens[:, :5])
    np.testing.assert_array_equal(short.lengths, 5)
    same_length = np.asarray([p[:3] for p in PROMPTS], np.int32)
    from_array = _greedy(lm, same_length)
    from_lists = _greedy(lm, same_length.tolist())
    np.testing.assert_array_equal(from_array.tokens, from_lists.tokens)


def test_sampling_is_deterministic_given_rng(lm):
    def sample(seed, **kwargs):
        return sampling.generate(
            lm, PROMPTS, max_new_tokens=NEW_TOKENS, rng=jax.random.key(seed), temperature=1.0, stop_tokens=[], **kwargs
        )

    first, again, other = sample(0), sample(0), sample(1)
    legacy = sampling.generate(  # a raw uint32 key is one key, not one per row: the same draws as the typed key
        lm, PROMPTS, max_new_tokens=NEW_TOKENS, rng=jax.random.PRNGKey(0), temperature=1.0, stop_tokens=[]
    )
    np.testing.assert_array_equal(legacy.tokens, first.tokens)
    np.testing.assert_array_equal(first.tokens, again.tokens)
    np.testing.assert_array_equal(first.logprobs, again.logprobs)
    assert (first.tokens != other.tokens).any()
    assert (first.tokens != _greedy(lm, PROMPTS).tokens).any()


def test_prompt_rngs_make_each_prompts_samples_independent_of_its_batch(lm):
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(3), i))(jax.numpy.arange(len(PROMPTS)))

    def sample(indices):
        return sampling.generate(
            lm,
            [PROMPTS[i] for i in indices],
            max_new_tokens=NEW_TOKENS,
            prompt_rngs=keys[np.asarray(indices)],
            temperature=1.0,
            stop_tokens=[],
            num_samples=2,
        )

    together = sample(list(range(len(PROMPTS))))
    for i in range(len(PROMPTS)):  # alone, and in a batch in another order
        alone = sample([i])
        np.testing.assert_array_equal(alone.tokens, together.tokens[2 * i : 2 * i + 2])
    reordered = sample(list(range(len(PROMPTS)))[::-1])
    np.testing.assert_array_equal(reordered.tokens[-2:], together.tokens[:2])
    assert (together.tokens[0] != together.tokens[1]).any()  # the two samples of a prompt differ
    with pytest.raises(ValueError, match="one per prompt"):
        sampling.generate(lm, PROMPTS, max_new_tokens=2, prompt_rngs=keys[:1], temperature=1.0)


@pytest.mark.parametrize("filters", [dict(top_k=1), dict(top_p=1e-6)], ids=["top_k=1", "top_p=1e-6"])
def test_degenerate_filters_equal_greedy(lm, filters, record_diff):
    greedy = _greedy(lm, PROMPTS)
    out = sampling.generate(
        lm, PROMPTS, max_new_tokens=NEW_TOKENS, rng=jax.random.key(11), temperature=1.3, stop_tokens=[], **filters
    )
    np.testing.assert_array_equal(out.tokens, greedy.tokens)
    np.testing.assert_allclose(out.logprobs, greedy.logprobs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out.sampling_logprobs, 0.0, rtol=0, atol=1e-6)  # one token left: probability 1


def test_sampling_logprobs_follow_temperature(lm, record_diff):
    temperature = 0.7
    out = sampling.generate(
        lm, PROMPTS, max_new_tokens=8, rng=jax.random.key(5), temperature=temperature, stop_tokens=[]
    )
    worst = 0.0
    for row, prompt in enumerate(PROMPTS):
        tokens = out.tokens[row].tolist()
        logits = np.asarray(_forward(lm.module, lm.params, np.asarray([prompt + tokens], np.int32)))[0]
        positions = np.arange(len(prompt) - 1, len(prompt) + 7)
        expected = np.asarray(jax.nn.log_softmax(logits[positions] / temperature, axis=-1))[np.arange(8), tokens]
        worst = max(worst, np.abs(out.sampling_logprobs[row] - expected).max())
    record_diff("sampling logprobs (T=0.7) max|gen - full|", worst, 1e-4)
    assert worst <= 1e-4


def _filtered_logprobs(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Reference (numpy float64) log-probs of the temperature / top-k / nucleus distribution over `[n, vocab]`."""
    scaled = logits.astype(np.float64) / temperature
    keep = np.ones_like(scaled, bool)
    if top_k:
        keep &= scaled >= np.sort(scaled, axis=-1)[:, -top_k][:, None]
    if top_p < 1.0:
        masked = np.where(keep, scaled, -np.inf)
        probs = np.exp(masked - masked.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        order = np.argsort(-probs, axis=-1)
        sorted_probs = np.take_along_axis(probs, order, -1)
        before = np.cumsum(sorted_probs, -1) - sorted_probs  # mass of the more likely tokens
        keep_sorted = before < top_p  # the token that crosses top_p is kept
        nucleus = np.zeros_like(keep)
        np.put_along_axis(nucleus, order, keep_sorted, -1)
        keep &= nucleus
    masked = np.where(keep, scaled, -np.inf)
    return masked - np.logaddexp.reduce(masked, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "filters", [dict(top_k=5), dict(top_p=0.6), dict(top_k=8, top_p=0.8)], ids=["top_k=5", "top_p=0.6", "both"]
)
def test_filtered_sampling_stays_in_the_filter(lm, filters, record_diff):
    temperature = 0.8
    out = sampling.generate(
        lm, PROMPTS, max_new_tokens=8, rng=jax.random.key(3), temperature=temperature, stop_tokens=[], **filters
    )
    worst = 0.0
    for row, prompt in enumerate(PROMPTS):
        tokens = out.tokens[row].tolist()
        logits = np.asarray(_forward(lm.module, lm.params, np.asarray([prompt + tokens], np.int32)))[0]
        positions = np.arange(len(prompt) - 1, len(prompt) + 7)
        expected = _filtered_logprobs(logits[positions], temperature, **filters)[np.arange(8), tokens]
        assert np.isfinite(expected).all(), f"row {row} sampled a token outside the filter"
        worst = max(worst, np.abs(out.sampling_logprobs[row] - expected).max())
        raw = np.asarray(jax.nn.log_softmax(logits[positions], axis=-1))[np.arange(8), tokens]
        np.testing.assert_allclose(out.logprobs[row], raw, rtol=0, atol=1e-4)
    record_diff(f"filtered sampling logprobs {filters}", worst, 1e-4)
    assert worst <= 1e-4


def test_generate_reads_stacked_params_in_place_without_a_copy(make_tiny_lm, monkeypatch, record_diff):
    """The sampler decodes from the params as they are trained (stacked layers, scanned): the jitted sampler gets
    the very same arrays, and its compiled temp memory is a fraction of the weights (no per-layer copy is made).
    Tokens equal those decoded from an unstacked copy; log-probs to 1e-5."""
    fields = dict(hidden_size=128, intermediate_size=512, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32)
    stacked = make_tiny_lm(seed=5, scan_layers=True, **fields)
    seen = []
    original = sampling._generate_tokens

    def spy(module, params, *args, **kwargs):
        compiled = original.lower(module, params, *args, **kwargs).compile()
        seen.append((params, compiled.memory_analysis().temp_size_in_bytes))
        return original(module, params, *args, **kwargs)

    monkeypatch.setattr(sampling, "_generate_tokens", spy)
    out = _greedy(stacked, PROMPTS)
    ((params, temp_bytes),) = seen
    assert params is stacked.params  # the train-state tree itself, not a converted copy
    assert {x.shape[0] for x in jax.tree.leaves(stacked.params["layers"])} == {4}  # and it is the stacked layout
    weight_bytes = sum(x.nbytes for x in jax.tree.leaves(stacked.params))
    record_diff("sampler temp bytes / weight bytes (stacked params)", temp_bytes / weight_bytes, 0.5)
    assert temp_bytes < 0.5 * weight_bytes  # a copy of the weights inside the sampler would alone be 1.0
    unstacked = models.with_layer_layout(stacked, scan_layers=False)
    assert "layers_0" in unstacked.params
    reference = _greedy(unstacked, PROMPTS)
    np.testing.assert_array_equal(out.tokens, reference.tokens)
    diff = record_diff("logprobs |stacked - unstacked decode|", np.abs(out.logprobs - reference.logprobs).max(), 1e-5)
    assert diff <= 1e-5
