"""RSO (Liu et al. 2023): sample K candidates per prompt from the SFT policy, keep `rso_num_samples` of them by
statistical rejection sampling from π_sft·exp(r/β) (Algorithm 1), pair them (first-round or tournament rank), and
fit with the sigmoid-norm (DPO with loss temperature γ) or hinge-norm loss; β (sampling) and γ (loss) are separate.

    python -m rlaif_jax.main --config=configs/rso.py:tiny --workdir=/tmp/rso_tiny       # toy task: SFT, then RSO
    python -m rlaif_jax.main --config=configs/rso.py:smollm2 --workdir=/tmp/rso_sent    # SmolLM2, VADER sentiment

`tiny` (16 candidates, distinct decodes, keep 8, 4 first-round pairs per prompt) measured: held-out gold reward
0.48 -> 0.75 at 3.1 nats/sequence (WORKDIR/eval_*.json).
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task, SFT first), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper' (RSO §5)."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    config = config_defaults.load_config_file("dpo", "tiny" if tiny else "smollm2")  # job, model, data, train, ...
    config.loss = ml_collections.ConfigDict(
        dict(
            method="rso",  # 'dpo', 'slic', 'rrhf' or 'rso'
            gamma=1.0 if tiny else 0.05,  # γ, the loss temperature (§5: 0.05; the toy byte model needs more)
            rso_loss_type="sigmoid_norm",  # 'sigmoid_norm' (eq. 8), 'hinge_norm' (eq. 10) or 'hinge' (eq. 9)
            rso_beta=0.1 if tiny else 0.5,  # β of π_sft·exp(r/β) (§5: 0.5, for rewards in [0, 1] a sharper 0.1)
            rso_num_samples=8,  # candidates kept per prompt (§5: 8 of 64)
        )
    )
    config.data.samples_per_prompt = 16  # candidates sampled per prompt (§5: 64)
    config.data.pairing = "first_round"  # 'first_round' (n/2 pairs, best in §5.2) or 'tournament' (n - 1)
    if arg == "paper":
        # RSO §5 [V]; the T5-large policy and T5-XXL ranker are not bundled: set the model and the labeller.
        config.model.name = ""  # set: path of the SFT policy
        config.data.label_reward = ""  # set: 'reward_model:DIR' (the paper: a pairwise T5-XXL ranker)
        config.data.samples_per_prompt = 64  # §5: 64 decodes per prompt
        config.data.temperature = 0.7  # §5
        config.data.top_k = 40  # §5
        config.data.num_prompts = 0  # all train prompts
        config.loss.gamma = 0.05  # §5 (swept 0.005, 0.05, 0.5)
        config.loss.rso_beta = 0.5  # §5 (swept 0, 0.05, 0.5, 5)
        config.train.batch_size = 32  # §5
        config.train.num_steps = 0  # paper step count UNVERIFIED (checkpoint picked by ranker win rate)
        config.train.num_epochs = 1  # UNVERIFIED
        config.optimizer.learning_rate = 1e-5  # §5
        config.optimizer.warmup_steps = 0  # UNVERIFIED
        config.optimizer.name = "adafactor"  # §5 (decay / clipping: optax defaults, UNVERIFIED)
    return config
