"""Supervised fine-tuning: next-token negative log-likelihood on response tokens (prompt tokens masked).

InstructGPT §3.5 (SFT) and its PPO-ptx pretraining term γ·E_{x~D_pretrain}[log π(x)] (Ouyang et al. 2022, eq. 2)
are the same per-token quantity: the PPO-ptx objective calls `model_token_nll` too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import masked_sum, next_token_head, next_token_logprobs
from rlaif_jax.losses.seq2seq import seq2seq_sft_loss_fn
from rlaif_jax.models.t5 import EncoderDecoder


def sft_token_nll(logits: jax.Array, tokens: jax.Array, loss_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-token NLL of the targets, from full logits (the losses use `model_token_nll`, which never builds them).

    logits: [batch, seq, vocab]; tokens: int [batch, seq]; loss_mask: [batch, seq], 1 on tokens to predict (the
    response and its EOS), 0 on prompt and padding. Returns (nll [batch, seq - 1], target mask [batch, seq - 1]),
    where position t scores token t + 1.
    """
    target_mask = loss_mask[:, 1:].astype(bool)
    nll = -next_token_logprobs(logits, tokens)
    return jnp.where(target_mask, nll, 0.0), target_mask


def model_token_nll(
    module, params, tokens, attention_mask, loss_mask, dropout_rng: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`sft_token_nll` of `module`'s predictions by the chunked LM head (no [batch, seq, vocab] logits);
    `dropout_rng` turns LoRA dropout on (a training pass).

    Returns (nll [batch, seq - 1] (0 off the mask), target mask [batch, seq - 1], is_argmax [batch, seq - 1]: the
    target's logit is the largest)."""
    target_mask = loss_mask[:, 1:].astype(bool)
    head = next_token_head(module, params, tokens, attention_mask, dropout_rng)
    return jnp.where(target_mask, -head["logprobs"], 0.0), target_mask, head["is_argmax"]


def sft_loss_fn(module) -> Any:
    """A `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)` for `make_train_step`.

    batch: {'tokens': int [batch, seq], 'attention_mask': [batch, seq], 'loss_mask': [batch, seq]}.
    metrics values are (sum, count) pairs: 'loss' is the NLL summed over target tokens and their count;
    'token_accuracy' counts targets whose logit is the largest. LoRA dropout, where configured, draws from `rng`.
    """

    def loss_fn(params, batch, rng, frozen):
        del frozen
        nll, mask, correct = model_token_nll(
            module, params, batch["tokens"], batch["attention_mask"], batch["loss_mask"], rng
        )
        count = jnp.sum(mask.astype(jnp.float32))
        loss_sum = masked_sum(nll, mask)
        return loss_sum, {"loss": (loss_sum, count), "token_accuracy": (masked_sum(correct, mask), count)}

    return loss_fn


def supervised_loss_fn(module) -> Any:
    """The SFT `loss_fn` of a model: `sft_loss_fn` for a decoder, `losses.seq2seq.seq2seq_sft_loss_fn` for an
    encoder-decoder (whose batches hold encoder_tokens / target_tokens, `data.sft.tokenize_source_target`)."""
    return seq2seq_sft_loss_fn(module) if isinstance(module, EncoderDecoder) else sft_loss_fn(module)
