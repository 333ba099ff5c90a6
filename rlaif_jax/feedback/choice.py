"""Choice probabilities: how likely a language model continues each prompt with each of a few fixed answers.

RLAIF (Lee et al. 2023) reads its AI preference as the softmax over the log-probs of the tokens "1" and "2" after
the labeling prompt (§2.1), and its d-RLAIF score from the likelihoods of "1".."10" (§2.2.2). Here a choice may be
several tokens (SmolLM2 splits "10" into "1", "0"): its log-prob is the sum over its tokens of log p(token | prompt,
earlier choice tokens). When one choice's tokens begin another's ("1" and "1", "0"), p("1") also holds every
continuation that goes on to "10", so the mass of the longer choice is taken out of the shorter one: the answer "1"
is "1" not continued into "10", p("1") - p("10"). The probabilities are these exclusive masses renormalised over the
choices (for choices of which none begins another: the softmax of the summed log-probs).

Tokenisation: the prompt with the tokenizer's defaults (`tokenizer(text)`, BOS added if the tokenizer does), each
choice on its own (`tokenizer(choice, add_special_tokens=False)`), concatenated: prompt ids + choice ids. Tokenising
prompt + choice as one string instead could merge the choice with the prompt's last characters (a BPE vocabulary
with " 7" turns "SCORE: " + "7" into different prompt tokens per choice), so the choices would no longer be
continuations of one prefix. The HF comparison test uses the same construction.

Cost: a forward pass over prompt + c[:-1] gives the logits of every token of choice c, and of every choice whose
c[:-1] is a prefix of it; so each prompt needs one pass per distinct maximal c[:-1] (one pass for "1"/"2", one for
"1".."10" with "10" = "1", "0"). Rows are sorted by length, right-padded into power-of-two buckets
(`sampling.bucket_size`) and run `batch_size` at a time, so a call compiles once per bucket.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlaif_jax import distributed, sharding
from rlaif_jax.models.loading import LanguageModel
from rlaif_jax.sampling import bucket_size


def encode_choices(tokenizer: Any, choices: Sequence[str]) -> list[list[int]]:
    """Token ids of each choice, tokenised alone without special tokens; raises on empty, duplicate or untokenisable
    choices (and on two choices with the same ids)."""
    if len(choices) < 2:
        raise ValueError(f"need at least two choices to compare; got {list(choices)}")
    if len(set(choices)) != len(choices):
        raise ValueError(f"choices must be distinct; got {list(choices)}")
    choice_ids = []
    for choice in choices:
        if not isinstance(choice, str) or not choice:
            raise ValueError(f"choice {choice!r} is not a non-empty string")
        ids = [int(i) for i in tokenizer(choice, add_special_tokens=False)["input_ids"]]
        if not ids:
            raise ValueError(f"choice {choice!r} tokenises to no tokens")
        choice_ids.append(ids)
    if len({tuple(ids) for ids in choice_ids}) != len(choice_ids):
        raise ValueError(f"two choices of {list(choices)} tokenise to the same ids: {choice_ids}")
    return choice_ids


def scoring_contexts(choice_ids: Sequence[Sequence[int]]) -> tuple[list[tuple[int, ...]], list[int]]:
    """The continuations to run after each prompt and which one scores each choice.

    Choice c needs the logits after prompt + c[:-1]; a pass over prompt + k gives the logits after prompt + every
    prefix of k. Returns (contexts: the maximal c[:-1], those not a proper prefix of another; context_of_choice:
    for each choice, the index of a context that starts with its c[:-1]).
    """
    needed = sorted({tuple(ids[:-1]) for ids in choice_ids}, key=lambda k: (-len(k), k))
    contexts: list[tuple[int, ...]] = []
    for context in needed:
        if not any(other[: len(context)] == context for other in contexts):
            contexts.append(context)
    context_of_choice = [
        next(i for i, context in enumerate(contexts) if context[: len(ids) - 1] == tuple(ids[:-1]))
        for ids in choice_ids
    ]
    return contexts, context_of_choice


def _logits_at(module, tokens, attention_mask, read_positions):
    """Float32 logits `[batch, K, vocab]` at `read_positions [batch, K]` only (the LM head skips the rest)."""
    hidden = module.hidden_states(tokens, attention_mask=attention_mask)
    picked = jnp.take_along_axis(hidden, read_positions[..., None], axis=1)
    return module._logits(picked)


@functools.partial(jax.jit, static_argnames=("module",))
def _read_logprobs(module, params, tokens, attention_mask, read_positions, token_ids):
    """log p(token_ids[u] | tokens[:, : read_positions + 1]) as float32 `[batch, K, U]`."""
    logits = module.apply({"params": params}, tokens, attention_mask, read_positions, method=_logits_at)
    return jax.nn.log_softmax(logits, axis=-1)[:, :, token_ids]


def choice_logprobs(
    lm: LanguageModel,
    prompt_ids: Sequence[Sequence[int]],
    choice_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
) -> np.ndarray:
    """Summed log-prob of each full choice continuation after each prompt, unnormalised.

    Args:
      lm: the model (params may be sharded on `lm.mesh`).
      prompt_ids: n token-id lists (not padded). choice_ids: C token-id lists (see `encode_choices`).
      batch_size: sequences per forward pass at most (a smaller batch is padded to a power of two with copies of
        its first row).
    Returns:
      float64 `[n, C]`: sum_j log p(choice_ids[c][j] | prompt, choice_ids[c][:j]).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    contexts, context_of_choice = scoring_contexts(choice_ids)
    num_reads = max(len(ids) for ids in choice_ids)  # K: positions read per row
    token_ids = np.array(sorted({t for ids in choice_ids for t in ids}), np.int32)  # U
    column = {int(t): u for u, t in enumerate(token_ids)}
    context_limit = lm.config.max_position_embeddings
    rows = []  # (prompt index, context index, prompt length, sequence)
    for index, prompt in enumerate(prompt_ids):
        if not len(prompt):
            raise ValueError(f"prompt {index} is empty")
        if len(prompt) + num_reads - 1 > context_limit:
            raise ValueError(
                f"prompt {index} has {len(prompt)} tokens; with its longest choice ({num_reads} tokens) that exceeds "
                f"the model's context of {context_limit} tokens"
            )
        for k, context in enumerate(contexts):
            rows.append((index, k, len(prompt), [int(t) for t in prompt] + list(context)))
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r][3]))  # similar lengths share a bucket
    pad_id = lm.config.pad_token_id if lm.config.pad_token_id is not None else 0
    picked = np.zeros((len(rows), num_reads, len(token_ids)), np.float32)
    for start in range(0, len(order), batch_size):
        batch_rows = order[start : start + batch_size]
        batch = min(bucket_size(len(batch_rows), minimum=1), batch_size)
        seq = bucket_size(len(rows[batch_rows[0]][3]))
        tokens = np.full((batch, seq), pad_id, np.int32)
        mask = np.zeros((batch, seq), bool)
        read_positions = np.zeros((batch, num_reads), np.int32)
        for slot in range(batch):
            _, _, prompt_length, sequence = rows[batch_rows[slot] if slot < len(batch_rows) else batch_rows[0]]
            tokens[slot, : len(sequence)] = sequence
            mask[slot, : len(sequence)] = True
            # Position prompt_length - 1 + j predicts choice token j; reads past a row's end are never used.
            read_positions[slot] = np.minimum(prompt_length - 1 + np.arange(num_reads), seq - 1)
        inputs = sharding.place_batch((tokens, mask, read_positions), lm.mesh, lm.rules)
        with sharding.activate(lm.mesh, lm.rules):
            out = _read_logprobs(lm.module, lm.params, *inputs, jnp.asarray(token_ids))
        picked[batch_rows] = distributed.to_host(out)[: len(batch_rows)]
    row_of = {(p, k): r for r, (p, k, _, _) in enumerate(rows)}
    result = np.zeros((len(prompt_ids), len(choice_ids)), np.float64)
    for c, ids in enumerate(choice_ids):
        for p in range(len(prompt_ids)):
            row = picked[row_of[(p, context_of_choice[c])]]
            result[p, c] = sum(float(row[j, column[t]]) for j, t in enumerate(ids))
    return result


def choice_probabilities(
    lm: LanguageModel,
    prompt_texts: Sequence[str],
    choices: Sequence[str] = ("1", "2"),
    *,
    batch_size: int = 8,
) -> np.ndarray:
    """The model's probability of answering each prompt with each choice, renormalised over the choices.

    Args:
      lm: a model with a tokenizer.
      prompt_texts: n prompts, tokenised with the tokenizer's defaults (`tokenizer(text)`).
      choices: C answers; each is scored as its full token continuation (see the module docstring).
      batch_size: sequences per forward pass.
    Returns:
      float64 `[n, C]`, rows summing to 1: each choice's probability as a complete answer (see
      `exclusive_choice_probabilities`; the softmax of the summed log-probs when no choice begins another).
    """
    if lm.tokenizer is None:
        raise ValueError("choice_probabilities needs a model with a tokenizer (lm.tokenizer is None)")
    choice_ids = encode_choices(lm.tokenizer, choices)
    prompt_ids = [list(lm.tokenizer(text)["input_ids"]) for text in prompt_texts]
    logprobs = choice_logprobs(lm, prompt_ids, choice_ids, batch_size=batch_size)
    return exclusive_choice_probabilities(logprobs, choice_ids)


def minimal_extensions(choice_ids: Sequence[Sequence[int]]) -> list[list[int]]:
    """For each choice c, the choices whose ids start with c's and are longer, with no other choice between them
    (for "1", "10", "100": "1" -> ["10"], "10" -> ["100"], "100" -> [])."""
    ids = [tuple(c) for c in choice_ids]

    def extends(longer, shorter):
        return len(longer) > len(shorter) and longer[: len(shorter)] == shorter

    result = []
    for c in ids:
        longer = [e for e in range(len(ids)) if extends(ids[e], c)]
        result.append([e for e in longer if not any(extends(ids[e], ids[m]) for m in longer if m != e)])
    return result


def exclusive_choice_probabilities(logprobs: np.ndarray, choice_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """Choice probabilities from summed continuation log-probs, each choice's mass without the choices that extend it.

    Args:
      logprobs: `[n, C]` summed log p of each choice's full token continuation (`choice_logprobs`).
      choice_ids: the C choices' token ids.
    Returns:
      float64 `[n, C]`, rows summing to 1: (p_c - sum of p_e over c's minimal extensions e), clipped at 0 against
      rounding, renormalised. Without prefix relations this is the softmax of `logprobs` over the choices.
    """
    logprobs = np.asarray(logprobs, np.float64)
    weights = np.exp(logprobs - logprobs.max(axis=1, keepdims=True))
    exclusive = weights.copy()
    for c, extensions in enumerate(minimal_extensions(choice_ids)):
        if extensions:
            exclusive[:, c] = np.maximum(weights[:, c] - weights[:, extensions].sum(axis=1), 0.0)
    # The row sum is at least the largest weight's root choice (>= 1), so never 0.
    return exclusive / exclusive.sum(axis=1, keepdims=True)
