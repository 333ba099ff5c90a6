"""GRPO / Dr. GRPO / DAPO / GSPO (and TIS) against TRL 1.16's own `GRPOTrainer._compute_loss` on the same inputs.

`_compute_loss(model, inputs)` is called unbound on a bare trainer object (`object.__new__`, only the attributes
the method reads), with `_get_per_token_logps_and_entropies` standing in for the model: it returns the per-token
log-probs as a torch leaf tensor, so TRL's loss *and its gradient with respect to the log-probs* can be compared with
ours. GSPO is TRL's loss_type 'grpo' with `importance_sampling_level='sequence'`; TIS is TRL's
`vllm_importance_sampling_correction` with the truncated ratio passed in as `importance_sampling_ratio`.
The advantages are checked against TRL's formula built from its own `nanstd`.
"""

import collections
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlaif_jax.losses import grpo

N, R, G = 8, 6, 4  # responses, response length, group size
BETA = 0.04


@pytest.fixture(scope="module")
def trl_grpo():
    try:
        import torch
        import trl
        from trl.trainer.utils import nanstd
    except ImportError as error:
        pytest.fail(f"TRL parity needs the `test` extra (torch, trl): pip install -e .[test] ({error})", pytrace=False)
    return torch, trl.GRPOTrainer, nanstd


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(11)
    lengths = np.array([6, 3, 1, 5, 6, 2, 4, 6])
    mask = np.arange(R)[None] < lengths[:, None]
    logprobs = rng.normal(-1.5, 0.6, (N, R)).astype(np.float32)
    # old / reference near the policy so some ratios clip at ε = 0.2 and others do not
    old = (logprobs + rng.normal(0, 0.25, (N, R))).astype(np.float32)
    ref = (logprobs + rng.normal(0, 0.5, (N, R))).astype(np.float32)
    sampler = (old + rng.normal(0, 0.3, (N, R))).astype(np.float32)
    rewards = rng.normal(0, 1, N).astype(np.float32)
    return dict(mask=mask, logprobs=logprobs, old=old, ref=ref, sampler=sampler, rewards=rewards)


def trl_loss_and_grad(trl_grpo, case, advantages, *, loss_type, level, eps_low, eps_high, beta, tis=None):
    """TRL's loss and d loss / d per-token log-probs (zero off the mask)."""
    torch, grpo_trainer, _ = trl_grpo
    logps = torch.tensor(case["logprobs"], requires_grad=True)
    trainer = object.__new__(grpo_trainer)

    class Accelerator:
        num_processes = 1
        sync_gradients = True

        def gather(self, x):
            return x

        def reduce(self, x, reduction="sum"):
            return x

    trainer.accelerator = Accelerator()
    trainer.args = types.SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1)
    trainer.model = types.SimpleNamespace(training=True)
    trainer.top_entropy_quantile = 1.0
    trainer.off_policy_mask_threshold = None
    trainer.importance_sampling_level = level
    trainer.beta = beta
    trainer.loss_type = loss_type
    trainer.epsilon_low, trainer.epsilon_high = eps_low, eps_high
    trainer.use_vllm = trainer.vllm_importance_sampling_correction = tis is not None
    trainer.current_gradient_accumulation_steps = 1
    trainer.max_completion_length = R
    trainer._entropy_bonus_enabled = False
    trainer.aux_loss_enabled = False
    trainer._metrics = {"train": collections.defaultdict(list), "eval": collections.defaultdict(list)}
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (logps, torch.zeros_like(logps), None)
    mask = torch.tensor(case["mask"].astype(np.int64))
    inputs = {
        "prompt_ids": torch.zeros((N, 2), dtype=torch.long),
        "prompt_mask": torch.ones((N, 2), dtype=torch.long),
        "completion_ids": torch.zeros((N, R), dtype=torch.long),
        "completion_mask": mask,
        "advantages": torch.tensor(np.asarray(advantages)),
        "old_per_token_logps": torch.tensor(case["old"]),
        "ref_per_token_logps": torch.tensor(case["ref"]),
        "num_items_in_batch": mask.sum(),
    }
    if tis is not None:
        inputs["importance_sampling_ratio"] = torch.tensor(np.asarray(tis))
    loss = grpo_trainer._compute_loss(trainer, None, inputs)
    loss.backward()
    return float(loss.detach()), np.where(case["mask"], logps.grad.numpy(), 0.0)


def our_loss_and_grad(case, advantages, *, loss, eps_low, eps_high, beta, tis=None):
    aggregation = grpo.AGGREGATIONS[loss]

    def objective(logprobs):
        per_token, clipped, _ = grpo.per_token_loss(
            logprobs,
            case["old"],
            case["ref"],
            advantages,
            case["mask"],
            eps_low=eps_low,
            eps_high=eps_high,
            kl_coef=beta,
            sequence_ratio=loss == "gspo",
            token_weights=tis,
        )
        loss_sum, count = grpo.aggregate(per_token, case["mask"], aggregation, max_length=R)
        return loss_sum / count, clipped  # what make_train_step differentiates for one micro-batch

    (value, clipped), grad = jax.value_and_grad(objective, has_aux=True)(jnp.asarray(case["logprobs"]))
    return float(value), np.asarray(grad), np.asarray(clipped)


LOSS_CASES = {  # ours -> (TRL loss_type, importance_sampling_level, ε_low, ε_high, β, scale advantages)
    "grpo": ("grpo", "token", 0.2, 0.2, BETA, True),
    "dr_grpo": ("dr_grpo", "token", 0.2, 0.2, BETA, False),
    "dapo": ("dapo", "token", 0.2, 0.28, 0.0, True),
    "gspo": ("grpo", "sequence", 0.03, 0.04, BETA, True),  # wider than GSPO's 3e-4 so that some sequences clip
}


@pytest.mark.parametrize("loss", list(LOSS_CASES))
@pytest.mark.parametrize("with_tis", [False, True], ids=["plain", "tis"])
def test_loss_and_gradient_equal_trl(trl_grpo, case, loss, with_tis, record_diff):
    loss_type, level, eps_low, eps_high, beta, scale = LOSS_CASES[loss]
    advantages = np.asarray(grpo.group_advantages(case["rewards"], G, scale=scale))
    tis = np.asarray(grpo.tis_weights(case["old"], case["sampler"], case["mask"], cap=1.2)) if with_tis else None
    if with_tis:
        assert 0 < (tis[case["mask"]] == 1.2).mean() < 1  # the cap binds on some tokens only
    expected, expected_grad = trl_loss_and_grad(
        trl_grpo,
        case,
        advantages,
        loss_type=loss_type,
        level=level,
        eps_low=eps_low,
        eps_high=eps_high,
        beta=beta,
        tis=tis,
    )
    ours, grad, clipped = our_loss_and_grad(
        case, advantages, loss=loss, eps_low=eps_low, eps_high=eps_high, beta=beta, tis=tis
    )
    assert 0 < clipped[case["mask"]].mean() < 1  # both branches of the min are exercised
    name = f"{loss}{' + TIS' if with_tis else ''}"
    assert record_diff(f"|ours - TRL| {name} loss", abs(ours - expected), 1e-5) <= 1e-5
    assert record_diff(f"grad max|ours - TRL| {name}", np.abs(grad - expected_grad).max(), 1e-6) <= 1e-6
    assert np.abs(expected_grad).max() > 1e-3  # the gradient is not trivially zero


def test_group_advantages_equal_trls_formula(trl_grpo):
    """TRL: `(r - mean_g) / (nanstd_g + 1e-4)` (scale_rewards='group'); `r - mean_g` for 'none' (Dr. GRPO)."""
    torch, _, nanstd = trl_grpo
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, -1.0, 0.25, 3.0], np.float32)
    grouped = torch.tensor(rewards).view(-1, G)
    mean = grouped.mean(dim=1).repeat_interleave(G)
    std = nanstd(grouped, dim=1).repeat_interleave(G)
    expected = (torch.tensor(rewards) - mean) / (std + 1e-4)
    np.testing.assert_allclose(np.asarray(grpo.group_advantages(rewards, G)), expected.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(grpo.group_advantages(rewards, G, scale=False)), (torch.tensor(rewards) - mean).numpy(), atol=1e-7
    )
