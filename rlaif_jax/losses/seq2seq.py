"""Encoder-decoder (T5) scores for the losses: sequence log-probs of targets, per-token log-probs of rollout
responses, and the seq2seq SFT loss (teacher forcing behind `decoder_start_token_id`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlaif_jax.models.t5 import EncoderDecoder


def target_logprobs(
    module: EncoderDecoder,
    params,
    encoder_ids: jax.Array,
    encoder_mask: jax.Array,
    target_ids: jax.Array,
    temperature: float = 1.0,
) -> jax.Array:
    """log p_T(target token | encoder input, earlier targets) of every target position, `[batch, dec_len]`.

    encoder_ids, encoder_mask: [batch, enc_len]; target_ids: [batch, dec_len]. The decoder reads the targets shifted
    right behind `decoder_start_token_id` (teacher forcing); logits are divided by `temperature`.
    """
    start = jnp.full((target_ids.shape[0], 1), module.config.decoder_start_token_id, target_ids.dtype)
    decoder_ids = jnp.concatenate([start, target_ids[:, :-1]], axis=1)
    logits = module.apply({"params": params}, encoder_ids, decoder_ids, encoder_mask)
    logprobs = jax.nn.log_softmax(logits / (temperature or 1.0), axis=-1)
    return jnp.take_along_axis(logprobs, target_ids[..., None], axis=-1)[..., 0]


def sequence_logprobs(
    module: EncoderDecoder,
    params,
    encoder_ids: jax.Array,
    encoder_mask: jax.Array,
    target_ids: jax.Array,
    target_mask: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Summed log p(target | encoder input) of each row and its number of target tokens.

    encoder_ids, encoder_mask: [batch, enc_len]; target_ids, target_mask: [batch, dec_len] (right-padded, EOS
    included, mask 1 on scored tokens). Returns (logps float32 [batch], counts float32 [batch]).
    """
    token_logprobs = target_logprobs(module, params, encoder_ids, encoder_mask, target_ids)
    mask = jnp.asarray(target_mask, bool)
    return jnp.sum(jnp.where(mask, token_logprobs, 0.0), axis=-1), jnp.sum(mask, axis=-1).astype(jnp.float32)


def response_logprobs(
    module: EncoderDecoder, params, tokens: jax.Array, attention_mask: jax.Array, prompt_length: int, temperature=1.0
) -> jax.Array:
    """log π_T of each response token of rollout rows laid out as the decoder-only ones: `tokens [n, P + R]`, the
    left-padded prompt (the encoder input, `attention_mask` on its real tokens) then the response (the decoder's
    targets). Returns `[n, R]` (padding after a response included; callers mask it)."""
    return target_logprobs(
        module,
        params,
        tokens[:, :prompt_length],
        attention_mask[:, :prompt_length],
        tokens[:, prompt_length:],
        temperature,
    )


def seq2seq_sft_loss_fn(module: EncoderDecoder):
    """A `loss_fn(params, batch, rng, frozen)` for `make_train_step`: token NLL of the targets.

    batch: encoder_tokens, encoder_attention_mask [batch, enc_len]; target_tokens, target_mask [batch, dec_len].
    metrics ((sum, count) over target tokens): loss.
    """

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        logps, counts = sequence_logprobs(
            module,
            params,
            batch["encoder_tokens"],
            batch["encoder_attention_mask"],
            batch["target_tokens"],
            batch["target_mask"],
        )
        loss_sum = -jnp.sum(logps)
        return loss_sum, {"loss": (loss_sum, jnp.sum(counts))}

    return loss_fn
