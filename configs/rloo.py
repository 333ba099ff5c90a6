"""RLOO: REINFORCE with the leave-one-out baseline over k samples per prompt (Ahmadian et al. 2024, building on
Kool et al. 2019), reward (1-β)·r - β·KL as in RLAIF; no value model.

    python -m rlaif_jax.main --config=configs/rloo.py:tiny --workdir=/tmp/rloo_tiny       # toy task
    python -m rlaif_jax.main --config=configs/rloo.py:smollm2 --workdir=/tmp/rloo_sent    # sentiment

WORKDIR/eval_start.json and eval_end.json hold the held-out gold reward and KL before and after.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper'."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    config = ml_collections.ConfigDict()
    config.job = "online_rl"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # rollout rng = fold_in(key(seed), iteration)
    config.model = config_defaults.model("tiny" if arg == "tiny" else "smollm2")
    config.mesh = config_defaults.mesh()
    config.rl = config_defaults.rl("tiny" if arg == "tiny" else "smollm2", "rloo")
    config.train = ml_collections.ConfigDict(dict(num_steps=120 if arg == "tiny" else 24))  # optimizer steps
    config.optimizer = config_defaults.optimizer(learning_rate=1e-3 if arg == "tiny" else 2e-6, schedule="constant")
    config.checkpoint = ml_collections.ConfigDict(dict(every_iterations=5, keep=2))  # checkpoint cadence / kept
    config.sft_first = arg == "tiny"  # run `config.sft` into WORKDIR/sft first and start RL from its result
    config.sft = config_defaults.load_config_file("sft", "tiny" if arg == "tiny" else "smollm2")  # configs/sft.py
    config.sft.export_hf = True  # RL loads the SFT result from WORKDIR/sft/hf_model
    if arg == "paper":
        # None of the five papers uses RLOO; these are RLAIF's App. G settings with k = 4 (Ahmadian et al. 2024).
        config.model.name = ""  # set: path of the SFT policy
        config.rl.kl_coef = 0.05  # RLAIF App. G β
        config.rl.temperature = 0.9  # RLAIF App. G
        config.rl.samples_per_prompt = 4  # Ahmadian et al. 2024 use k in {2, 4}
        config.rl.prompts_per_rollout = 32  # 128 sequences per batch, as RLAIF App. G
        config.rl.minibatch_size = 128
        config.optimizer.learning_rate = 1e-5  # RLAIF App. G
        config.train.num_steps = 8 * 123_000 // 128  # RLAIF App. G: 8 epochs over ~123k TL;DR posts
    return config
