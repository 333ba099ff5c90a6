"""PPO against a reward with a per-token KL penalty to the start policy (InstructGPT §3.5, App. C.4); PPO-ptx with
`--config.rl.ptx_coef=27.8`.

    python -m rlaif_jax.main --config=configs/ppo.py:tiny --workdir=/tmp/ppo_tiny       # toy task: SFT, then PPO
    python -m rlaif_jax.main --config=configs/ppo.py:smollm2 --workdir=/tmp/ppo_sent    # SmolLM2, VADER sentiment

`tiny` first fine-tunes a random-init model on noisy toy demonstrations (WORKDIR/sft), then runs PPO on the gold
reward; WORKDIR/eval_start.json and eval_end.json hold the held-out gold reward and KL before and after.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper' (InstructGPT C.4)."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    config = ml_collections.ConfigDict()
    config.job = "online_rl"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # rollout rng = fold_in(key(seed), iteration)
    config.model = config_defaults.model("tiny" if arg == "tiny" else "smollm2")
    config.mesh = config_defaults.mesh()
    config.rl = config_defaults.rl("tiny" if arg == "tiny" else "smollm2", "ppo")
    config.train = ml_collections.ConfigDict(dict(num_steps=120 if arg == "tiny" else 24))  # optimizer steps
    config.optimizer = config_defaults.optimizer(learning_rate=1e-3 if arg == "tiny" else 2e-6, schedule="constant")
    config.checkpoint = ml_collections.ConfigDict(dict(every_iterations=5, keep=2))  # checkpoint cadence / kept
    config.sft_first = arg == "tiny"  # run `config.sft` into WORKDIR/sft first and start RL from its result
    config.sft = config_defaults.load_config_file("sft", "tiny" if arg == "tiny" else "smollm2")  # configs/sft.py
    config.sft.export_hf = True  # RL loads the SFT result from WORKDIR/sft/hf_model
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
