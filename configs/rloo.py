"""RLOO: REINFORCE with the leave-one-out baseline over k samples per prompt (Ahmadian et al. 2024, building on
Kool et al. 2019), reward (1-β)·r - β·KL as in RLAIF; no value model.

    python -m rlaif_jax.main --config=configs/rloo.py:tiny --workdir=/tmp/rloo_tiny       # toy task
    python -m rlaif_jax.main --config=configs/rloo.py:smollm2 --workdir=/tmp/rloo_sent    # sentiment

WORKDIR/eval_start.json and eval_end.json hold the held-out gold reward and KL before and after (`tiny` measured in
experiments/results/rl_toy.md: 0.48 -> 0.95 at 2.7 nats/sequence).
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper'."""
    config = config_defaults.online_rl(arg, "rloo")  # job, model, mesh, rl, train, optimizer, checkpoint, sft
    if arg == "paper":
        # None of the five papers uses RLOO; these are RLAIF's App. G settings with k = 4 (Ahmadian et al. 2024).
        config.model.name = ""  # set: path of the SFT policy
        config_defaults.rlaif_tldr_rl(config.rl)  # TL;DR posts, 1024 tokens, no gold judge
        config.rl.reward = "reward_model:"  # set: append the distilled RLAIF reward model's workdir
        config.rl.kl_coef = 0.05  # RLAIF App. G β
        config.rl.temperature = 0.9  # RLAIF App. G
        config.rl.samples_per_prompt = 4  # Ahmadian et al. 2024 use k in {2, 4}
        config.rl.prompts_per_rollout = 32  # 128 sequences per batch, as RLAIF App. G
        config.rl.minibatch_size = 128
        config.optimizer.learning_rate = 1e-5  # RLAIF App. G
        config.train.num_steps = 8 * 123_000 // 128  # RLAIF App. G: 8 epochs over ~123k TL;DR posts
    return config
