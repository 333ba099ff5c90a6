"""A trained reward model as the RL reward, placed on the mesh: sharded like the policy, scoring rows split over the
data-parallel devices, with the same rewards as the unsharded model."""

import jax
import numpy as np

from rlaif_jax import config_defaults, models, sharding
from rlaif_jax.models.byte_tokenizer import byte_tokenizer
from rlaif_jax.rewards.by_name import make_reward_fn
from rlaif_jax.rewards.reward_model import RewardModelReward


def _saved_reward_model(directory) -> str:
    tiny = config_defaults.model("tiny")
    config = models.ModelConfig(**dict(tiny.tiny), scalar_head=True)
    lm = models.init_random(config, seed=3, tokenizer=byte_tokenizer())
    head = np.random.default_rng(0).normal(size=config.hidden_size).astype(np.float32)
    params = {**lm.params, "scalar_head": {"kernel": head, "bias": np.float32(0.5)}}
    models.save_hf(lm.replace(params=params), str(directory))
    return str(directory)


def test_reward_model_on_the_mesh_is_sharded_and_scores_like_one_device(tmp_path):
    path = _saved_reward_model(tmp_path / "rm")
    prompts = [f"prompt {i}" for i in range(11)]  # not a multiple of the batch: padded rows are dropped
    completions = [f"answer number {i * 7}" for i in range(11)]
    single = RewardModelReward(path, max_length=48, use_chat_template=False, batch_size=8)
    mesh = sharding.make_mesh(fsdp=-1)
    sharded = make_reward_fn(f"reward_model:{path}", max_length=48, use_chat_template=False, mesh=mesh)
    embedding = sharded.model.params["embedding"]
    assert embedding.sharding.mesh.shape == mesh.shape and not embedding.sharding.is_fully_replicated
    expected = single(prompts, completions)
    assert expected.shape == (11,) and np.std(expected) > 0
    np.testing.assert_allclose(sharded(prompts, completions), expected, rtol=1e-5, atol=1e-5)
    assert len(jax.devices()) == 8
