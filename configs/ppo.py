"""PPO against a reward with a per-token KL penalty to the start policy (InstructGPT §3.5, App. C.4); PPO-ptx with
`--config.rl.ptx_coef=27.8`.

    python -m rlaif_jax.main --config=configs/ppo.py:tiny --workdir=/tmp/ppo_tiny       # toy task: SFT, then PPO
    python -m rlaif_jax.main --config=configs/ppo.py:smollm2 --workdir=/tmp/ppo_sent    # SmolLM2, VADER sentiment

`tiny` first fine-tunes a random-init model on noisy toy demonstrations (WORKDIR/sft), then runs PPO on the gold
reward; WORKDIR/eval_start.json and eval_end.json hold the held-out gold reward and KL before and after
(measured: 0.48 -> 0.96 at 3.2 nats/sequence). InstructGPT end to end: train configs/reward_model.py:tiny into
RM_DIR, then add `--config.rl.reward=reward_model:RM_DIR` to train on the learned reward (minus its §3.5 bias).
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper' (InstructGPT C.4)."""
    config = config_defaults.online_rl(arg, "ppo")  # job, model, mesh, rl, train, optimizer, checkpoint, sft
    if arg == "paper":
        # InstructGPT App. C.4. The 1.3B-175B GPT-3 policies are not public: set config.model.name.
        config.model.name = ""  # set: path of the SFT policy
        config.rl.kl_coef = 0.02  # C.4, eq. 2
        config.rl.ptx_coef = 27.8  # C.4 (PPO-ptx; 0 for plain PPO)
        config.rl.prompts_per_rollout = 512  # C.4 batch size
        config.rl.minibatch_size = 64  # C.4 (8 minibatches)
        config.rl.epochs = 1  # C.4: one inner epoch
        config.rl.gamma = 1.0  # C.4: no discount
        config.rl.lam = 0.95  # GAE λ UNVERIFIED (not stated in the text read)
        config.rl.clip_ratio = 0.2  # C.4
        config.rl.temperature = 1.0  # C.4 rollout temperature
        config.train.num_steps = 256_000 // 64  # C.4: 256k episodes at minibatch 64
        config.optimizer.learning_rate = 9e-6  # C.4 value LR (1.3B/6B); the policy LR is UNVERIFIED
        config.optimizer.warmup_steps = 10 * 8  # C.4: warmup over the first 10 iterations (8 minibatches each)
    return config
