"""DPO / cDPO / IPO / hinge against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses.dpo import dpo_loss


def test_dpo_is_ln2_when_policy_equals_reference():
    logps = jnp.array([-3.0, -10.0, -0.5])
    loss, chosen, rejected = dpo_loss(logps, logps - 1.0, logps, logps - 1.0, beta=0.1)
    np.testing.assert_allclose(np.asarray(loss), np.log(2.0) * np.ones(3), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(chosen), 0.0)
    np.testing.assert_array_equal(np.asarray(rejected), 0.0)


def test_sigmoid_ipo_hinge_and_cdpo_by_hand():
    # h = (-1 - -2) - (-4 - -3) = 1 - (-1) = 2; beta = 0.5 -> beta * h = 1.
    args = (jnp.array([-1.0]), jnp.array([-4.0]), jnp.array([-2.0]), jnp.array([-3.0]))
    sigmoid, chosen, rejected = dpo_loss(*args, beta=0.5)
    np.testing.assert_allclose(np.asarray(sigmoid), [np.log1p(np.exp(-1.0))], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(chosen), [0.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(rejected), [-0.5], rtol=1e-6)
    ipo, _, _ = dpo_loss(*args, beta=0.5, loss_type="ipo")
    np.testing.assert_allclose(np.asarray(ipo), [(2.0 - 1.0) ** 2], rtol=1e-6)
    hinge, _, _ = dpo_loss(*args, beta=0.25, loss_type="hinge")
    np.testing.assert_allclose(np.asarray(hinge), [1.0 - 0.5], rtol=1e-6)
    cdpo, _, _ = dpo_loss(*args, beta=0.5, label_smoothing=0.2)
    expected = 0.8 * np.log1p(np.exp(-1.0)) + 0.2 * np.log1p(np.exp(1.0))
    np.testing.assert_allclose(np.asarray(cdpo), [expected], rtol=1e-6)


def test_bfloat16_margins_of_1e4_stay_finite():
    big = jnp.array([1e4, -1e4], jnp.bfloat16)
    zero = jnp.zeros(2, jnp.bfloat16)
    for loss_type in ("sigmoid", "ipo", "hinge"):
        loss, _, _ = dpo_loss(big, -big, zero, zero, beta=0.1, loss_type=loss_type)
        assert loss.dtype == jnp.float32 and np.isfinite(np.asarray(loss)).all(), loss_type


def test_unknown_loss_type_is_named():
    x = jnp.zeros(1)
    with pytest.raises(ValueError, match="loss_type='kto'"):
        dpo_loss(x, x, x, x, beta=0.1, loss_type="kto")


# --- the train-step adapter -------------------------------------------------------------------------------------

PROMPT = 3  # prompt tokens per row; the response (scored) starts after them


def pair_batch(seed: int, num_pairs: int = 3, chosen_len: int = 9, rejected_len: int = 6) -> dict:
    """A pairwise batch whose chosen and rejected sequences have different lengths and right padding."""
    rng = np.random.default_rng(seed)
    batch = {}
    for prefix, length in (("chosen", chosen_len), ("rejected", rejected_len)):
        tokens = rng.integers(3, 128, (num_pairs, length)).astype(np.int32)
        lengths = rng.integers(PROMPT + 1, length + 1, num_pairs)
        positions = np.arange(length)[None]
        attention = positions < lengths[:, None]
        tokens = np.where(attention, tokens, 0)
        batch.update(
            {
                f"{prefix}_tokens": tokens,
                f"{prefix}_attention_mask": attention,
                f"{prefix}_loss_mask": attention & (positions >= PROMPT),
            }
        )
    batch["reference_chosen_logps"] = rng.normal(-20.0, 3.0, num_pairs).astype(np.float32)
    batch["reference_rejected_logps"] = rng.normal(-15.0, 3.0, num_pairs).astype(np.float32)
    return batch


class CountingModule:
    """Delegates to a Flax module and records the batch size of every pass through the transformer body (at trace
    time; the LM head on its hidden states is not counted)."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __getattr__(self, name):  # hidden_states, head_logprobs, ...: the module's own methods
        return getattr(self.module, name)

    def apply(self, variables, tokens, *args, method=None, **kwargs):
        if method is None or method == self.module.hidden_states:
            self.calls.append(tokens.shape[0])
        return self.module.apply(variables, tokens, *args, method=method, **kwargs)


@pytest.fixture(scope="module")
def tiny_lm(make_tiny_lm):
    return make_tiny_lm(seed=1)


def separate_logps(lm, batch, prefix):
    """`sequence_logprobs` of one group on its own (unpadded): (logps [batch], num_tokens [batch])."""
    import jax

    from rlaif_jax.losses.logprobs import sequence_logprobs

    columns = (batch[f"{prefix}_{key}"] for key in ("tokens", "attention_mask", "loss_mask"))
    return jax.jit(sequence_logprobs, static_argnums=0)(lm.module, lm.params, *columns)


@pytest.mark.parametrize(
    "loss_type,label_smoothing", [("sigmoid", 0.0), ("sigmoid", 0.2), ("hinge", 0.0), ("ipo", 0.0)]
)
def test_adapter_is_dpo_loss_on_sequence_logprobs(tiny_lm, loss_type, label_smoothing):
    import jax

    from rlaif_jax.losses.dpo import dpo_loss_fn

    lm = tiny_lm
    batch = pair_batch(0)
    chosen, chosen_count = separate_logps(lm, batch, "chosen")
    rejected, rejected_count = separate_logps(lm, batch, "rejected")
    ref_c, ref_r = jnp.asarray(batch["reference_chosen_logps"]), jnp.asarray(batch["reference_rejected_logps"])
    if loss_type == "ipo":  # per-token-averaged log-ratios, chosen and rejected each by its own length
        expected, _, _ = dpo_loss(
            chosen / chosen_count,
            rejected / rejected_count,
            ref_c / chosen_count,
            ref_r / rejected_count,
            beta=0.1,
            loss_type="ipo",
        )
    else:
        expected, _, _ = dpo_loss(
            chosen, rejected, ref_c, ref_r, beta=0.1, loss_type=loss_type, label_smoothing=label_smoothing
        )
    counting = CountingModule(lm.module)
    loss_fn = dpo_loss_fn(counting, beta=0.1, loss_type=loss_type, label_smoothing=label_smoothing)
    (loss_sum, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(lm.params, batch, None, None)
    assert counting.calls == [6]  # chosen and rejected in ONE forward pass
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0.0
    np.testing.assert_allclose(float(loss_sum), float(jnp.sum(expected)), rtol=1e-5)
    assert all(float(count) == 3.0 for _, count in metrics.values())
    reward_c = 0.1 * (np.asarray(chosen) - np.asarray(ref_c))
    reward_r = 0.1 * (np.asarray(rejected) - np.asarray(ref_r))
    np.testing.assert_allclose(float(metrics["reward_chosen"][0]), reward_c.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["reward_rejected"][0]), reward_r.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["reward_margin"][0]), (reward_c - reward_r).sum(), rtol=1e-5)
    assert float(metrics["accuracy"][0]) == np.sum(reward_c > reward_r)
    np.testing.assert_allclose(float(metrics["logps_chosen"][0]), float(jnp.sum(chosen)), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["logps_rejected"][0]), float(jnp.sum(rejected)), rtol=1e-5)


def test_bfloat16_model_and_margins_of_1e4_give_finite_loss_and_gradients(make_tiny_lm):
    import jax

    from rlaif_jax.losses.dpo import dpo_loss_fn

    batch = pair_batch(1)
    batch["reference_chosen_logps"] = np.array([1e4, -1e4, 0.0], np.float32)  # margins of ±1e4
    bf16 = make_tiny_lm(seed=1, dtype="bfloat16", param_dtype="bfloat16")
    loss_fn = dpo_loss_fn(bf16.module, beta=0.1, loss_type="hinge")  # hinge: the +1e4 pair has a gradient
    (loss_sum, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(bf16.params, batch, None, None)
    assert loss_sum.dtype == jnp.float32 and np.isfinite(float(loss_sum))
    assert all(np.isfinite(float(total)) for total, _ in metrics.values())
    norms = [float(jnp.linalg.norm(g.astype(jnp.float32))) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0.0


def test_adapter_names_a_missing_column(tiny_lm):
    from rlaif_jax.losses.dpo import dpo_loss_fn

    batch = pair_batch(0)
    del batch["rejected_loss_mask"]
    with pytest.raises(KeyError, match="rejected_loss_mask"):
        dpo_loss_fn(tiny_lm.module, beta=0.1)(tiny_lm.params, batch, None, None)
    batch = pair_batch(0)
    del batch["reference_chosen_logps"]
    with pytest.raises(KeyError, match="reference_chosen_logps"):
        dpo_loss_fn(tiny_lm.module, beta=0.1)(tiny_lm.params, batch, None, None)
    with pytest.raises(ValueError, match="loss_type='kto'"):
        dpo_loss_fn(tiny_lm.module, beta=0.1, loss_type="kto")
