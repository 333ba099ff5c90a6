"""REINFORCE with a learned value baseline, reward on the final token, γ = 1, objective (1-β)·r - β·KL: the RL of
RLAIF (Lee et al. 2023, App. F).

    python -m rlaif_jax.main --config=configs/reinforce.py:tiny --workdir=/tmp/reinforce_tiny     # toy task
    python -m rlaif_jax.main --config=configs/reinforce.py:smollm2 --workdir=/tmp/reinforce_sent  # sentiment

`tiny` fine-tunes on noisy toy demonstrations first (WORKDIR/sft); WORKDIR/eval_start.json and eval_end.json hold
the held-out gold reward and KL before and after (experiments/results/rl_toy.md, measured: 0.48 -> 0.95 at 2.7
nats/sequence with the V(x) baseline, the same with App. F's per-token V(x, y_<t): `--config.rl.baseline=per_token`,
which `paper` uses). `paper` runs on TL;DR posts (`rl.prompts`) against the reward model named in `rl.reward`.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper' (RLAIF App. G)."""
    config = config_defaults.online_rl(arg, "reinforce")  # job, model, mesh, rl, train, optimizer, checkpoint, sft
    if arg == "paper":
        # RLAIF App. F/G. The PaLM 2 XS policy is not public: set config.model.name.
        config.model.name = ""  # set: path of the SFT policy
        config_defaults.rlaif_tldr_rl(config.rl)  # TL;DR posts, 1024 tokens, no gold judge
        config.rl.reward = "reward_model:"  # set: append the distilled RLAIF reward model's workdir
        config.rl.kl_coef = 0.05  # App. G: β
        config.rl.temperature = 0.9  # App. G: sampling temperature for exploration
        config.rl.prompts_per_rollout = 128  # App. G: batch size
        config.rl.minibatch_size = 128  # App. G: batch size
        config.rl.epochs = 1  # one gradient step per batch (App. F does not reuse samples)
        config.rl.baseline = "per_token"  # App. F: V(X_t) at every response state
        config.rl.max_new_tokens = 128  # App. G: max target length (summarization)
        config.optimizer.learning_rate = 1e-5  # App. G
        config.optimizer.name = "adamw"  # App. G says Adafactor for SFT/RM; the RL optimizer is UNVERIFIED
        config.train.num_steps = 8 * 123_000 // 128  # App. G: 8 epochs over the ~123k TL;DR train posts
    return config
