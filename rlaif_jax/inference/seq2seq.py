"""Encoder–decoder (T5) sampling and sequence log-probs: the encoder runs once per batch, the decoder one token per
step against a KV cache (cross-attention keys / values computed once), and decoding stops when every row has
emitted EOS. Each token comes with its log-probability under the raw model, as `rlaif_jax.sampling` gives."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.models.t5 import EncoderDecoder
from rlaif_jax.sampling import GenerationOutput, bucket_size, sample_tokens


@functools.partial(jax.jit, static_argnames=("module", "max_new_tokens", "greedy", "top_k"))
def _generate(
    module: EncoderDecoder, params, encoder_ids, encoder_mask, rng, temperature, *, max_new_tokens, greedy, top_k
):
    cfg = module.config
    variables = {"params": params}
    batch = encoder_ids.shape[0]
    encoded = module.apply(variables, encoder_ids, encoder_mask, method=module.encode)
    cache = module.apply(variables, encoded, max_new_tokens, method=module.start_cache)
    eos = jnp.asarray(cfg.eos_token_ids, jnp.int32)

    def not_done(carry):
        step, _, _, _, _, finished, _ = carry
        return (step < max_new_tokens) & ~jnp.all(finished)

    def body(carry):
        step, previous, cache, tokens, logprobs, finished, lengths = carry
        logits, cache = module.apply(variables, previous[:, None], cache, encoder_mask, method=module.decode_step)
        token, raw_logprob, _ = sample_tokens(
            logits[:, -1],
            jax.random.fold_in(rng, step),
            temperature=temperature,
            top_k=top_k,
            top_p=None,
            greedy=greedy,
        )
        token = jnp.where(finished, cfg.pad_token_id, token)
        raw_logprob = jnp.where(finished, 0.0, raw_logprob)
        tokens = tokens.at[:, step].set(token)
        logprobs = logprobs.at[:, step].set(raw_logprob)
        lengths = lengths + (~finished).astype(jnp.int32)
        finished = finished | jnp.any(token[:, None] == eos[None, :], axis=-1)
        return step + 1, token, cache, tokens, logprobs, finished, lengths

    start = jnp.full((batch,), cfg.decoder_start_token_id, jnp.int32)
    carry = (
        jnp.zeros((), jnp.int32),
        start,
        cache,
        jnp.full((batch, max_new_tokens), cfg.pad_token_id, jnp.int32),
        jnp.zeros((batch, max_new_tokens), jnp.float32),
        jnp.zeros((batch,), bool),
        jnp.zeros((batch,), jnp.int32),
    )
    steps, _, _, tokens, logprobs, _, lengths = jax.lax.while_loop(not_done, body, carry)
    return tokens, logprobs, lengths, steps


def generate(
    lm: LanguageModel,
    encoder_ids: np.ndarray,
    encoder_mask: np.ndarray | None = None,
    *,
    max_new_tokens: int,
    rng: jax.Array | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
) -> GenerationOutput:
    """Samples (greedy when `rng` is None or temperature is 0) up to `max_new_tokens` decoder tokens per row of
    `encoder_ids [batch, enc_len]` (right-padded; `encoder_mask` 1 = real).

    The batch is padded to a power-of-two bucket (filler rows are dropped from the output). Returns a
    GenerationOutput: tokens `[batch, max_new_tokens]` (EOS kept, pad after it), log-probs under the raw model,
    lengths (EOS included), texts decoded by `lm.tokenizer` when it has one. `sampling_logprobs` equals `logprobs`
    at temperature 1 without top-k, else it is zeros (not computed for the truncated distribution here).
    """
    if not isinstance(lm.module, EncoderDecoder):
        raise TypeError("seq2seq.generate needs an encoder-decoder model (models.load of a T5 checkpoint)")
    encoder_ids = np.asarray(encoder_ids, np.int32)
    if encoder_ids.ndim != 2:
        raise ValueError(f"encoder_ids must be [batch, enc_len]; got shape {encoder_ids.shape}")
    mask = np.ones_like(encoder_ids) if encoder_mask is None else np.asarray(encoder_mask, np.int32)
    batch = encoder_ids.shape[0]
    padded = bucket_size(batch, minimum=1)
    if padded > batch:
        encoder_ids = np.concatenate([encoder_ids, np.zeros((padded - batch, encoder_ids.shape[1]), np.int32)])
        mask = np.concatenate([mask, np.ones((padded - batch, mask.shape[1]), np.int32)])
    greedy = rng is None or temperature == 0.0
    tokens, logprobs, lengths, _ = _generate(
        lm.module,
        lm.params,
        encoder_ids,
        mask,
        jax.random.key(0) if rng is None else rng,
        jnp.float32(temperature or 1.0),
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        top_k=top_k,
    )
    tokens, logprobs, lengths = (np.asarray(x)[:batch] for x in (tokens, logprobs, lengths))
    texts = None
    if lm.tokenizer is not None:
        texts = [lm.tokenizer.decode(row[:n].tolist(), skip_special_tokens=True) for row, n in zip(tokens, lengths)]
    sampling = logprobs if (not greedy and temperature == 1.0 and top_k == 0) else np.zeros_like(logprobs)
    return GenerationOutput(tokens, logprobs, sampling, lengths, texts)
