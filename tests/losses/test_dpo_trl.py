"""DPO / IPO / hinge / cDPO against TRL's own DPOTrainer loss code on the same inputs.

TRL 1.16's `DPOTrainer._compute_loss(model, inputs, return_outputs)` is called unbound on a bare trainer object
(`object.__new__`, only the attributes the method reads) with a stand-in model whose output carries the per-token
log-probs that our tiny JAX model gives the same sequences (zeros off the completion, as TRL's masked labels give).
Reference log-probs go in precomputed (`precompute_ref_logps`), as the pipeline does.

TRL 1.16's 'sigmoid' ignores `label_smoothing` (it now feeds 'robust', 'exo_pair' and 'aot' only), so cDPO is
checked against 'aot' called on one pair at a time: with a batch of one its sorts are the identity and its loss is
exactly cDPO's `-(1 - ε)·log σ(β·h) - ε·log σ(-β·h)`.
"""

import collections
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.dpo import dpo_loss_fn
from rlaif_jax.losses.logprobs import next_token_logprobs

SEQ = 10
PROMPT = 3
NUM_PAIRS = 4
BETA = 0.2


@pytest.fixture(scope="module")
def trl_dpo():
    try:
        import torch
        import trl
    except ImportError as error:
        pytest.fail(f"TRL parity needs the `test` extra (torch, trl): pip install -e .[test] ({error})", pytrace=False)
    return torch, trl.DPOTrainer


@pytest.fixture(scope="module")
def case(make_tiny_lm):
    """A pairwise batch ([chosen; rejected] share one padded width, as TRL's collator makes them) and the tiny
    model's per-token log-probs of it: float32 [2 * NUM_PAIRS, SEQ - 1], zero off the completion."""
    lm = make_tiny_lm(seed=3)
    rng = np.random.default_rng(7)
    tokens = rng.integers(3, 128, (2 * NUM_PAIRS, SEQ)).astype(np.int32)
    lengths = rng.integers(PROMPT + 2, SEQ + 1, 2 * NUM_PAIRS)
    attention = np.arange(SEQ)[None] < lengths[:, None]
    tokens = np.where(attention, tokens, 0)
    completion = attention & (np.arange(SEQ)[None] >= PROMPT)
    logits = jax.jit(lambda p, t, m: lm.module.apply({"params": p}, t, attention_mask=m))(lm.params, tokens, attention)
    per_token = np.where(completion[:, 1:], np.asarray(next_token_logprobs(logits, jnp.asarray(tokens))), 0.0)
    batch = {}
    for prefix, rows in (("chosen", slice(0, NUM_PAIRS)), ("rejected", slice(NUM_PAIRS, None))):
        batch[f"{prefix}_tokens"] = tokens[rows]
        batch[f"{prefix}_attention_mask"] = attention[rows]
        batch[f"{prefix}_loss_mask"] = completion[rows]
    # reference log-probs near the policy's, so that β·h is O(1) and every loss is in its interesting range
    logps = per_token.sum(axis=1)
    batch["reference_chosen_logps"] = (logps[:NUM_PAIRS] + rng.normal(0, 2.0, NUM_PAIRS)).astype(np.float32)
    batch["reference_rejected_logps"] = (logps[NUM_PAIRS:] + rng.normal(0, 2.0, NUM_PAIRS)).astype(np.float32)
    return lm, batch, dict(tokens=tokens, attention=attention, completion=completion, per_token=per_token)


def trl_loss(trl_dpo, arrays, batch, rows, *, loss_type, label_smoothing=0.0):
    """TRL's DPO loss (mean over pairs) and logged metrics for the pairs `rows` (indices into NUM_PAIRS)."""
    torch, dpo_trainer = trl_dpo
    index = np.concatenate([rows, np.asarray(rows) + NUM_PAIRS])  # TRL's batch is [chosen; rejected]

    class StandInModel(torch.nn.Module):
        def forward(self, **kwargs):
            per_token = torch.as_tensor(arrays["per_token"][index], dtype=torch.float32)
            zeros = torch.zeros_like(per_token)
            return types.SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())

    class Accelerator:
        device = torch.device("cpu")

        def gather(self, x):
            return x

        gather_for_metrics = gather

    trainer = object.__new__(dpo_trainer)
    model = StandInModel()
    attributes = dict(
        model=model,
        accelerator=Accelerator(),
        beta=BETA,
        loss_types=[loss_type],
        loss_weights=[1.0],
        ld_alpha=None,
        f_divergence_type="reverse_kl",
        label_smoothing=label_smoothing,
        use_weighting=False,
        precompute_ref_logps=True,
        aux_loss_enabled=False,
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    for name, value in attributes.items():
        object.__setattr__(trainer, name, value)
    inputs = dict(
        input_ids=torch.as_tensor(arrays["tokens"][index], dtype=torch.long),
        attention_mask=torch.as_tensor(arrays["attention"][index], dtype=torch.long),
        completion_mask=torch.as_tensor(arrays["completion"][index], dtype=torch.long),
        ref_chosen_logps=torch.as_tensor(batch["reference_chosen_logps"][rows]),
        ref_rejected_logps=torch.as_tensor(batch["reference_rejected_logps"][rows]),
    )
    with torch.no_grad():
        loss = dpo_trainer._compute_loss(trainer, model, inputs, False)
    return float(loss), {key: values[-1] for key, values in trainer._metrics["train"].items()}


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_loss_and_metrics_equal_trl(trl_dpo, case, loss_type, record_diff):
    lm, batch, arrays = case
    expected, trl_metrics = trl_loss(trl_dpo, arrays, batch, np.arange(NUM_PAIRS), loss_type=loss_type)
    loss_sum, metrics = jax.jit(dpo_loss_fn(lm.module, beta=BETA, loss_type=loss_type))(lm.params, batch, None, None)
    ours = {name: float(total) / float(count) for name, (total, count) in metrics.items()}
    assert expected > 0.05  # a non-degenerate case (no hinge at 0, no sigmoid at 0)
    diff = record_diff(f"|ours - TRL| {loss_type} loss", abs(ours["loss"] - expected), 1e-5)
    assert diff <= 1e-5 * max(1.0, abs(expected)), (ours["loss"], expected)
    for ours_name, trl_name in [
        ("reward_chosen", "rewards/chosen"),
        ("reward_rejected", "rewards/rejected"),
        ("reward_margin", "rewards/margins"),
        ("accuracy", "rewards/accuracies"),
        ("logps_chosen", "logps/chosen"),
        ("logps_rejected", "logps/rejected"),
    ]:
        np.testing.assert_allclose(ours[ours_name], trl_metrics[trl_name], rtol=1e-5, atol=1e-5, err_msg=ours_name)


def test_cdpo_equals_trl_aot_on_single_pairs(trl_dpo, case, record_diff):
    lm, batch, arrays = case
    label_smoothing = 0.3
    expected = [
        trl_loss(trl_dpo, arrays, batch, [pair], loss_type="aot", label_smoothing=label_smoothing)[0]
        for pair in range(NUM_PAIRS)
    ]
    loss_sum, _ = jax.jit(dpo_loss_fn(lm.module, beta=BETA, label_smoothing=label_smoothing))(
        lm.params, batch, None, None
    )
    one_pair_loss = jax.jit(dpo_loss_fn(lm.module, beta=BETA, label_smoothing=label_smoothing))
    ours = [
        float(one_pair_loss(lm.params, {key: value[pair : pair + 1] for key, value in batch.items()}, None, None)[0])
        for pair in range(NUM_PAIRS)
    ]
    diff = record_diff("max |ours - TRL aot| cDPO per pair", np.max(np.abs(np.subtract(ours, expected))), 1e-5)
    assert diff <= 1e-5
    np.testing.assert_allclose(float(loss_sum), sum(expected), rtol=1e-5)
    # and TRL's plain 'sigmoid' does ignore label smoothing: it differs from cDPO here
    sigmoid = trl_loss(trl_dpo, arrays, batch, np.arange(NUM_PAIRS), loss_type="sigmoid", label_smoothing=0.3)[0]
    assert abs(sigmoid - sum(expected) / NUM_PAIRS) > 1e-3
