"""Supervised fine-tuning: next-token negative log-likelihood on response tokens (prompt tokens masked).

InstructGPT §3.5 (SFT) and its PPO-ptx pretraining term γ·E_{x~D_pretrain}[log π(x)] (Ouyang et al. 2022, eq. 2)
are the same per-token quantity; `ptx_loss_sum` is the alias the PPO-ptx objective uses.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlaif_jax.losses.logprobs import masked_sum, next_token_logprobs


def sft_token_nll(logits: jax.Array, tokens: jax.Array, loss_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-token NLL of the targets.

    logits: [batch, seq, vocab]; tokens: int [batch, seq]; loss_mask: [batch, seq], 1 on tokens to predict (the
    response and its EOS), 0 on prompt and padding. Returns (nll [batch, seq - 1], target mask [batch, seq - 1]),
    where position t scores token t + 1.
    """
    target_mask = loss_mask[:, 1:].astype(bool)
    nll = -next_token_logprobs(logits, tokens)
    return jnp.where(target_mask, nll, 0.0), target_mask


def sft_loss_fn(module) -> Any:
    """A `loss_fn(params, batch, rng, frozen) -> (loss_sum, metrics)` for `make_train_step`.

    batch: {'tokens': int [batch, seq], 'attention_mask': [batch, seq], 'loss_mask': [batch, seq]}.
    metrics values are (sum, count) pairs: 'loss' is the NLL summed over target tokens and their count.
    """

    def loss_fn(params, batch, rng, frozen):
        del rng, frozen
        logits = module.apply({"params": params}, batch["tokens"], attention_mask=batch["attention_mask"])
        nll, mask = sft_token_nll(logits, batch["tokens"], batch["loss_mask"])
        count = jnp.sum(mask.astype(jnp.float32))
        loss_sum = masked_sum(nll, mask)
        # Top-1 accuracy without an argmax over the vocabulary: the target's logit is the largest one.
        targets = jnp.concatenate([batch["tokens"][:, 1:], batch["tokens"][:, :1]], axis=1)
        target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        correct = (target_logits >= jnp.max(logits, axis=-1))[:, :-1]
        return loss_sum, {"loss": (loss_sum, count), "token_accuracy": (masked_sum(correct, mask), count)}

    return loss_fn


ptx_loss_sum = sft_token_nll
