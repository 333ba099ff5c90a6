"""A trained reward model as an RL reward: r(x, y) minus the InstructGPT bias (§3.5) recorded by its run."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import numpy as np

from rlaif_jax import distributed, models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data.sft import tokenize_prompt_response
from rlaif_jax.losses.reward_model import sequence_rewards

PREFIX = "reward_model:"  # `config.rl.reward = "reward_model:WORKDIR"` selects this reward


class RewardModelReward:
    """Scores (prompt, completion) texts with the reward model of a `reward_model` run.

    `path` is that run's WORKDIR (its hf_model/ and reward_model.json are read) or an HF directory with a
    scalar_head.safetensors (bias 0). Rows are scored `batch_size` at a time, right-padded to `max_length`.
    With a `mesh` the reward model is sharded by `rules` like the policy and scores rows split over the
    data-parallel devices; the rewards come back to every process.
    """

    def __init__(
        self,
        path: str,
        *,
        max_length: int,
        use_chat_template: bool,
        batch_size: int = 16,
        mesh=None,
        rules=None,
        dtype: str = "float32",
    ):
        model_dir = os.path.join(path, "hf_model") if run_dir.path(path, "hf_model").is_dir() else path
        if not run_dir.exists(os.path.join(model_dir, "scalar_head.safetensors")):
            raise FileNotFoundError(f"{model_dir} has no scalar_head.safetensors: not a trained reward model")
        results_path = os.path.join(path, "reward_model.json")
        self.bias = json.loads(run_dir.read_text(results_path))["bias"] if run_dir.exists(results_path) else 0.0
        self.model = models.load(model_dir, scalar_head=True, mesh=mesh, rules=rules, dtype=dtype)
        self.max_length = max_length
        self.use_chat_template = use_chat_template
        self.batch_size = batch_size
        module = self.model.module
        self._rewards = jax.jit(lambda params, tokens, mask: sequence_rewards(module, params, tokens, mask))

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        rows = [{"prompt": p, "response": c} for p, c in zip(prompts, completions)]
        examples = tokenize_prompt_response(
            rows, self.model.tokenizer, max_length=self.max_length, use_chat_template=self.use_chat_template
        )
        if len(examples) != len(rows):
            raise ValueError(f"{len(rows) - len(examples)} prompts do not fit the reward model's max_length")
        tokens, mask = examples.arrays["tokens"], examples.arrays["attention_mask"]
        scores = []
        for start in range(0, len(rows), self.batch_size):
            rows_here = np.arange(start, start + self.batch_size)
            rows_here = np.where(rows_here < len(rows), rows_here, 0)  # one shape, one compile
            batch = sharding.place_batch((tokens[rows_here], mask[rows_here]), self.model.mesh, self.model.rules)
            with sharding.activate(self.model.mesh, self.model.rules):
                scores.append(distributed.to_host(self._rewards(self.model.params, *batch)))
        return (np.concatenate(scores)[: len(rows)] - self.bias).astype(np.float32)
