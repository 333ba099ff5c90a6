"""RRHF (Yuan et al. 2023): K responses of one prompt scored by a reward; a ranking hinge on their length-normalised
log-probs (no margin, no reference model) plus SFT on the best response. Groups come from K samples of the start
policy per prompt (`--config.data.source=jsonl` reads ranked rows {"prompt", "responses": [best, ...], "rewards"}).

    python -m rlaif_jax.main --config=configs/rrhf.py:tiny --workdir=/tmp/rrhf_tiny      # toy task: SFT, then RRHF
    python -m rlaif_jax.main --config=configs/rrhf.py:smollm2 --workdir=/tmp/rrhf_sent   # SmolLM2, VADER sentiment

`tiny` measured: held-out gold reward 0.48 -> 0.68 at 0.4 nats/sequence (WORKDIR/eval_*.json).
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task, SFT first), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper' (train.sh)."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    config = config_defaults.load_config_file("dpo", "tiny" if tiny else "smollm2")  # job, model, data, train, ...
    config.loss = ml_collections.ConfigDict(
        dict(
            method="rrhf",  # 'dpo', 'slic', 'rrhf' or 'rso'
            rank_weight=1.0,  # weight of the ranking loss (the repo's rrhf_weight, 1 in train.sh)
            sft_weight=1.0,  # weight of the NLL of the best response
        )
    )
    config.data.pairing = "groups"  # unused: RRHF trains on all K responses of a prompt at once
    config.train.batch_size = 16 if tiny else 4  # prompts (groups of K responses) per step
    if arg == "paper":
        # RRHF train.sh [V]; the LLaMA / Alpaca-7B policies and the Dahoas RM are not bundled.
        config.model.name = ""  # set: path of the initial policy (Alpaca-7B in the paper)
        config.data.label_reward = ""  # set: 'reward_model:DIR' (the paper: Dahoas/gptj-rm-static)
        config.data.max_length = 192  # train.sh model_max_length
        config.train.batch_size = 64  # 1 per device x 8 accumulation x 8 GPUs
        config.train.num_steps = 0  # epochs instead
        config.train.num_epochs = 3  # train.sh
        config.optimizer.learning_rate = 2e-5  # train.sh
        config.optimizer.schedule = "cosine"  # train.sh
        config.optimizer.final_lr_fraction = 0.0  # HF cosine decays to 0
        config.optimizer.warmup_steps = 0  # train.sh: warmup ratio 0.03 of the run; set to 3% of num_steps
        config.optimizer.weight_decay = 0.0  # train.sh
    return config
