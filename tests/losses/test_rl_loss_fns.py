"""The RL train-step losses (`ppo_loss_fn`, `reinforce_loss_fn`, `rloo_loss_fn`) and the loop's targets
(`rl_loop.make_targets`) against hand computations in plain numpy loops.

The model is a bigram table (logits at a position depend only on that position's token; the value head likewise),
so every expected number is a few lines of arithmetic independent of the library code.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rlaif_jax.losses import ppo, reinforce
from rlaif_jax.train import rl_loop

VOCAB, P, R = 4, 2, 3


class Bigram:
    """`apply` returns params['logits'][tokens] [n, L, V]; with `method=scalar`, params['value'][tokens] [n, L].
    Its "hidden states" are the token ids themselves, so the response-only head path runs through it too, and its
    `head_logprobs` is the plain log-softmax of those logits (the model's own chunked head is tested elsewhere)."""

    def scalar(self):  # only its identity matters: `method=module.scalar` selects the value head
        raise NotImplementedError

    def hidden_states(self):
        raise NotImplementedError

    def head_logprobs(self):
        raise NotImplementedError

    def apply(self, variables, tokens, *args, attention_mask=None, method=None, **kwargs):
        del attention_mask
        params = variables["params"]
        if method == self.scalar:
            return params["value"][tokens]
        if method == self.hidden_states:
            return tokens
        if method == self.head_logprobs:
            (targets,) = args
            logprobs = jax.nn.log_softmax(params["logits"][tokens] / kwargs.get("temperature", 1.0), axis=-1)
            target = jnp.take_along_axis(logprobs, targets[..., None], axis=-1)[..., 0]
            stats = {"logprobs": target, "is_argmax": target >= jnp.max(logprobs, axis=-1)}
            if kwargs.get("with_entropy"):
                stats["entropy"] = -jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1)
            return stats
        return params["logits"][tokens]  # __call__


def _params():
    rng = np.random.default_rng(0)
    return {
        "policy": {"logits": jnp.asarray(rng.normal(size=(VOCAB, VOCAB)), jnp.float32)},
        "value": {"value": jnp.asarray(rng.normal(size=VOCAB), jnp.float32)},
    }


def _batch():
    tokens = np.array([[0, 1, 2, 3, 0], [1, 1, 3, 0, 2]], np.int32)  # [n=2, P + R]
    response_mask = np.array([[1, 1, 1], [1, 1, 0]], bool)
    attention_mask = np.concatenate([np.ones((2, P), bool), response_mask], axis=1)
    return {"tokens": tokens, "attention_mask": attention_mask, "response_mask": response_mask}


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _hand_logprobs(params, tokens, temperature):
    """log π_T(token j of the response) from the logits at position P - 1 + j: [n, R]."""
    table = np.asarray(params["policy"]["logits"], np.float64) / temperature
    out = np.zeros((tokens.shape[0], R))
    for b in range(tokens.shape[0]):
        for j in range(R):
            out[b, j] = _log_softmax(table[tokens[b, P - 1 + j]])[tokens[b, P + j]]
    return out


def _hand_values(params, tokens):
    """The value head before each response token: [n, R]."""
    return np.asarray(params["value"]["value"], np.float64)[tokens[:, P - 1 : P - 1 + R]]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_reinforce_loss_fn_prompt_baseline_by_hand(temperature):
    params, batch = _params(), _batch()
    batch.update(advantages=np.array([0.5, -2.0], np.float32), returns=np.array([1.0, -0.25], np.float32))
    loss_fn = reinforce.reinforce_loss_fn(
        Bigram(), Bigram(), prompt_length=P, value_coef=0.3, baseline="prompt", temperature=temperature
    )
    loss, metrics = loss_fn(params, batch, None, None)
    logprobs = _hand_logprobs(params, batch["tokens"], temperature)
    values = _hand_values(params, batch["tokens"])
    expected = 0.0
    for b in range(2):
        expected += -batch["advantages"][b] * logprobs[b][batch["response_mask"][b]].sum()
        expected += 0.3 * 0.5 * (values[b, 0] - batch["returns"][b]) ** 2  # V(x): the head at the last prompt token
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["loss"][0]), expected, rtol=1e-5)


def test_reinforce_loss_fn_per_token_baseline_by_hand():
    """RLAIF App. F: L_PG = -Σ_t log π(A_t|X_t)·(Z - V(X_t)), L_V over every response token's state X_t."""
    params, batch = _params(), _batch()
    returns = np.array([1.0, -0.25], np.float32)
    values = _hand_values(params, batch["tokens"])
    advantages = np.where(batch["response_mask"], returns[:, None] - values, 0.0).astype(np.float32)
    batch.update(advantages=advantages, returns=returns)
    loss_fn = reinforce.reinforce_loss_fn(Bigram(), Bigram(), prompt_length=P, value_coef=0.3, baseline="per_token")
    loss, _ = loss_fn(params, batch, None, None)
    logprobs = _hand_logprobs(params, batch["tokens"], 1.0)
    expected = 0.0
    for b in range(2):
        tokens_b = np.flatnonzero(batch["response_mask"][b])
        expected += -sum(advantages[b, t] * logprobs[b, t] for t in tokens_b)
        expected += 0.3 * np.mean([0.5 * (values[b, t] - returns[b]) ** 2 for t in tokens_b])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)

    # The per-token value loss trains the head at every response state, the prompt baseline only at V(x).
    prompt_fn = reinforce.reinforce_loss_fn(Bigram(), Bigram(), prompt_length=P, value_coef=0.3)
    prompt_batch = {**batch, "advantages": returns - values[:, 0]}
    grads = {
        "per_token": jax.grad(lambda p: loss_fn(p, batch, None, None)[0])(params),
        "prompt": jax.grad(lambda p: prompt_fn(p, prompt_batch, None, None)[0])(params),
    }
    trained = lambda g: set(np.flatnonzero(np.asarray(g["value"]["value"])))  # noqa: E731
    assert trained(grads["prompt"]) == {1}  # tokens[:, P - 1] = (1, 1)
    assert trained(grads["per_token"]) == {1, 2, 3}  # the tokens at P - 1 .. P + 1 (masked ones excluded)


def test_rloo_loss_fn_by_hand_at_temperature():
    params, batch = _params(), _batch()
    batch["advantages"] = np.array([1.5, -1.5], np.float32)
    loss, _ = reinforce.rloo_loss_fn(Bigram(), prompt_length=P, temperature=0.5)(params, batch, None, None)
    logprobs = _hand_logprobs(params, batch["tokens"], 0.5)
    expected = sum(-batch["advantages"][b] * logprobs[b][batch["response_mask"][b]].sum() for b in range(2))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("ptx_coef", [0.0, 2.0])
def test_ppo_loss_fn_by_hand(ptx_coef):
    params, batch = _params(), _batch()
    temperature, clip, value_clip, value_coef, entropy_coef = 0.8, 0.2, 0.1, 0.5, 0.01
    logprobs = _hand_logprobs(params, batch["tokens"], temperature)
    values = _hand_values(params, batch["tokens"])
    # Old log-probs off by ±0.3 so that some ratios leave [0.8, 1.2] and get clipped.
    old_logprobs = logprobs + np.array([[0.3, -0.3, 0.05], [-0.3, 0.3, 0.0]])
    advantages = np.array([[1.0, 1.0, -1.0], [-0.5, 2.0, 0.0]])
    returns = values + np.array([[0.5, -0.05, 0.2], [-0.3, 0.0, 0.0]])
    old_values = values + np.array([[0.2, 0.0, -0.2], [0.0, 0.3, 0.0]])
    batch.update(
        old_logprobs=old_logprobs.astype(np.float32),
        advantages=advantages.astype(np.float32),
        returns=returns.astype(np.float32),
        old_values=old_values.astype(np.float32),
    )
    ptx_tokens = np.array([[3, 2, 1, 0], [0, 0, 2, 1]], np.int32)
    ptx_mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
    if ptx_coef:
        batch.update(ptx_tokens=ptx_tokens, ptx_attention_mask=ptx_mask, ptx_loss_mask=ptx_mask)
    loss_fn = ppo.ppo_loss_fn(
        Bigram(),
        Bigram(),
        prompt_length=P,
        clip_ratio=clip,
        value_clip=value_clip,
        value_coef=value_coef,
        entropy_coef=entropy_coef,
        ptx_coef=ptx_coef,
        temperature=temperature,
    )
    loss, metrics = loss_fn(params, batch, None, None)

    table = np.asarray(params["policy"]["logits"], np.float64)
    expected, count = 0.0, 0
    for b in range(2):
        for t in np.flatnonzero(batch["response_mask"][b]):
            ratio = np.exp(logprobs[b, t] - old_logprobs[b, t])
            a = advantages[b, t]
            pg = max(-a * ratio, -a * np.clip(ratio, 1 - clip, 1 + clip))
            v, v_old, ret = values[b, t], old_values[b, t], returns[b, t]
            v_clipped = v_old + np.clip(v - v_old, -value_clip, value_clip)
            vl = 0.5 * max((v - ret) ** 2, (v_clipped - ret) ** 2)
            probs = np.exp(_log_softmax(table[batch["tokens"][b, P - 1 + t]] / temperature))
            entropy = -(probs * np.log(probs)).sum()
            expected += pg + value_coef * vl - entropy_coef * entropy
            count += 1
    if ptx_coef:  # γ · (mean next-token NLL of the pretraining rows, at temperature 1) per RL token
        nll = [
            -_log_softmax(table[ptx_tokens[b, t - 1]])[ptx_tokens[b, t]]
            for b in range(2)
            for t in range(1, 4)
            if ptx_mask[b, t]
        ]
        expected += ptx_coef * np.mean(nll) * count
        np.testing.assert_allclose(float(metrics["ptx_loss"][0]) / float(metrics["ptx_loss"][1]), np.mean(nll), 1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert 0 < float(metrics["clip_fraction"][0]) < count  # the hand case exercises both branches


def _rl(algorithm, **overrides):
    values = dict(
        algorithm=algorithm,
        baseline="prompt",
        samples_per_prompt=2,
        kl_estimator="k1",
        gamma=1.0,
        lam=0.95,
        temperature=1.0,
        old_logprobs="trainer",
    )
    values.update(overrides)
    return ml_collections.ConfigDict(values)


def _rollout():
    scores = np.array([1.0, 0.0, -1.0, 2.0])
    mask = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]], bool)
    logprobs = np.array([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5], [-1.0, 0.0, 0.0], [-0.2, -0.4, 0.0]])
    ref_logprobs = np.array([[-1.5, -1.0, 0.0], [-0.5, -1.5, -0.5], [-2.0, 0.0, 0.0], [-0.2, -0.2, 0.0]])
    values = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [-0.1, 0.0, 0.0], [1.0, 1.5, 0.0]])
    return scores, mask, logprobs, ref_logprobs, values


def _hand_returns(scores, mask, logprobs, ref_logprobs, beta):
    return np.array(
        [(1 - beta) * scores[b] - beta * (logprobs[b] - ref_logprobs[b])[mask[b]].sum() for b in range(len(scores))]
    )


def test_make_targets_reinforce_baselines_by_hand():
    scores, mask, logprobs, ref_logprobs, values = _rollout()
    z = _hand_returns(scores, mask, logprobs, ref_logprobs, beta=0.1)
    prompt = rl_loop.make_targets(_rl("reinforce"), scores, mask, logprobs, ref_logprobs, values, 0.1)
    np.testing.assert_allclose(np.asarray(prompt["returns"]), z, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(prompt["advantages"]), z - values[:, 0], rtol=1e-6)
    per_token = rl_loop.make_targets(
        _rl("reinforce", baseline="per_token"), scores, mask, logprobs, ref_logprobs, values, 0.1
    )
    expected = np.where(mask, z[:, None] - values, 0.0)
    np.testing.assert_allclose(np.asarray(per_token["advantages"]), expected, rtol=1e-6, atol=1e-7)


def test_make_targets_rloo_leave_one_out_by_hand():
    scores, mask, logprobs, ref_logprobs, values = _rollout()
    z = _hand_returns(scores, mask, logprobs, ref_logprobs, beta=0.05)
    targets = rl_loop.make_targets(_rl("rloo"), scores, mask, logprobs, ref_logprobs, values, 0.05)
    # Groups of 2: each sample's baseline is the other one's return.
    np.testing.assert_allclose(np.asarray(targets["advantages"]), [z[0] - z[1], z[1] - z[0], z[2] - z[3], z[3] - z[2]])


def test_make_targets_ppo_gae_by_hand():
    scores, mask, logprobs, ref_logprobs, values = _rollout()
    beta, gamma, lam = 0.2, 0.9, 0.8
    targets = rl_loop.make_targets(_rl("ppo", gamma=gamma, lam=lam), scores, mask, logprobs, ref_logprobs, values, beta)
    advantages = np.zeros(mask.shape)
    for b in range(len(scores)):
        tokens = np.flatnonzero(mask[b])
        rewards = -beta * (logprobs[b] - ref_logprobs[b])
        rewards[tokens[-1]] += scores[b]  # the score on the last response token
        next_value = next_advantage = 0.0
        for t in reversed(tokens):
            delta = rewards[t] + gamma * next_value - values[b, t]
            advantages[b, t] = next_advantage = delta + gamma * lam * next_advantage
            next_value = values[b, t]
    np.testing.assert_allclose(np.asarray(targets["returns"]), np.where(mask, advantages + values, 0), rtol=1e-5)
    flat = advantages[mask]
    whitened = np.where(mask, (advantages - flat.mean()) / np.sqrt(flat.var(ddof=1) + 1e-8), 0.0)
    np.testing.assert_allclose(np.asarray(targets["advantages"]), whitened, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(targets["old_values"]), values)


@pytest.mark.parametrize("algorithm", ["ppo", "reinforce", "rloo"])
def test_loop_scores_and_trains_at_the_sampling_temperature(algorithm):
    """make_score_fn and make_loss_fn take log-probs at rl.temperature, the distribution the rollout came from."""
    params, batch = _params(), _batch()
    rl = _rl(algorithm, temperature=0.6, clip_ratio=10.0, value_clip=10.0, value_coef=0.0, entropy_coef=0.0)
    rl.ptx_coef = 0.0
    scored = rl_loop.make_score_fn(rl, Bigram(), Bigram(), P)(
        params, params["policy"], batch["tokens"], batch["attention_mask"]
    )
    logprobs, ref_logprobs = scored["logprobs"], scored["ref_logprobs"]
    expected = _hand_logprobs(params, batch["tokens"], 0.6)
    np.testing.assert_allclose(
        np.where(batch["response_mask"], logprobs, 0), np.where(batch["response_mask"], expected, 0), rtol=1e-5
    )
    np.testing.assert_allclose(np.asarray(ref_logprobs), np.asarray(logprobs), rtol=1e-6)

    advantages = np.array([[1.0, -1.0, 0.5], [0.25, 2.0, 0.0]], np.float32)
    batch.update(
        old_logprobs=np.asarray(logprobs),
        advantages=advantages if algorithm == "ppo" else advantages[:, 0],
        returns=np.zeros((2, R) if algorithm == "ppo" else 2, np.float32),
        old_values=np.zeros((2, R), np.float32),
    )
    grad = jax.grad(lambda p: rl_loop.make_loss_fn(rl, Bigram(), Bigram(), P)(p, batch, None, None)[0])(params)
    # At ratio 1 every algorithm's policy gradient is -Σ A·∇ log π_T: compare with the hand gradient at T = 0.6.
    a = advantages if algorithm == "ppo" else np.repeat(advantages[:, :1], R, axis=1)
    hand = (
        lambda table: (
            -jnp.sum(  # noqa: E731
                jnp.where(
                    batch["response_mask"],
                    a
                    * jnp.take_along_axis(
                        jax.nn.log_softmax(table[batch["tokens"][:, P - 1 : P - 1 + R]] / 0.6),
                        batch["tokens"][:, P:, None],
                        -1,
                    )[..., 0],
                    0.0,
                )
            )
        )
    )
    np.testing.assert_allclose(
        np.asarray(grad["policy"]["logits"]),
        np.asarray(jax.grad(hand)(params["policy"]["logits"])),
        rtol=1e-4,
        atol=1e-6,
    )


def test_value_network_gets_its_own_learning_rate():
    """InstructGPT C.4 gives the value function its own LR: with `rl.value_learning_rate` the value group steps at
    that rate and the policy at config.optimizer's."""
    from rlaif_jax import config_defaults

    config = ml_collections.ConfigDict(
        {
            "optimizer": config_defaults.optimizer(name="sgd", learning_rate=0.1, max_grad_norm=0.0),
            "rl": {"algorithm": "ppo", "value_learning_rate": 0.001},
        }
    )
    params = {"policy": {"w": jnp.zeros(3)}, "value": {"w": jnp.zeros(3)}}
    grads = jax.tree.map(jnp.ones_like, params)
    optimizer = rl_loop.make_rl_optimizer(config, num_steps=10)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["policy"]["w"]), -0.1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(updates["value"]["w"]), -0.001, rtol=1e-6)
    config.rl.value_learning_rate = 0.0  # 0 = the policy's optimizer for both
    shared = rl_loop.make_rl_optimizer(config, 10)
    updates, _ = shared.update(grads, shared.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["value"]["w"]), -0.1, rtol=1e-6)
