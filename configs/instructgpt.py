"""InstructGPT (Ouyang et al. 2022) end to end as one chain: SFT -> K samples per prompt from the SFT policy, ranked
(here by the gold judge, standing in for the labelers) -> K-way ranking reward model (§3.5 eq. 1: all C(K,2) pairs of
a prompt in one batch element) -> PPO-ptx against it (per-token KL to SFT, γ·next-token NLL on a separate
pretraining-style corpus; the value function starts from the reward model, §3.5) -> win rate of PPO-ptx against SFT.

    python -m rlaif_jax.main --config=configs/instructgpt.py:tiny --workdir=/tmp/instructgpt_tiny   # toy, ~1 min

WORKDIR/report.md gives each stage's headline (the RL stage: held-out gold reward before and after), the reward /
KL curve and the win-rate plot (rlaif_jax/chain.py). The ptx corpus of `tiny` is the library's small local sample
(rlaif_jax/data/corpus/pretraining_sample.txt): plain English, unrelated to the toy prompts.
"""

import ml_collections

from rlaif_jax import config_defaults
from rlaif_jax.data.pretraining import SAMPLE_CORPUS


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy letters task; random-init model SFT-trained first)."""
    if arg != "tiny":
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny'")
    load = config_defaults.load_config_file
    config = ml_collections.ConfigDict()
    config.job = "chain"  # rlaif_jax/pipelines/chain.py
    config.chain = ml_collections.ConfigDict(
        dict(
            title="InstructGPT (tiny): SFT -> K-way ranking RM -> PPO-ptx -> win rate vs SFT",
            order=("sft", "samples", "rm", "rl", "win_rate_gold"),
            notes=("tiny: rankings come from the toy gold reward (one response per distinct reward, best first).",),
        )
    )
    stages = config.stages = ml_collections.ConfigDict()
    stages.sft = load("sft", "tiny")
    stages.sft.export_hf = True

    stages.samples = load("samples", "tiny")
    stages.samples.model.name = "@sft/hf_model"
    stages.samples.num_prompts = 512
    stages.samples.samples_per_prompt = 4  # K (the paper: 4 to 9 per prompt)

    stages.rm = load("reward_model", "tiny")
    stages.rm.model.name = "@sft/hf_model"  # the RM starts from the SFT policy
    stages.rm.data.source, stages.rm.data.train_file = "jsonl", "@samples/rankings.jsonl"
    stages.rm.data.eval_fraction = 0.1
    stages.rm.loss.type = "ranking"  # §3.5 eq. 1
    stages.rm.train.num_steps, stages.rm.train.batch_size = 200, 16  # ranked prompts per step

    stages.rl = load("ppo", "tiny")
    stages.rl.model.name = "@sft/hf_model"
    stages.rl.sft_first = False
    stages.rl.rl.reward = "reward_model:@rm"
    stages.rl.rl.kl_coef = 0.05  # β: at ppo.py's 0.02 the policy drifted to 13 nats/sequence on the learned reward
    stages.rl.rl.ptx_coef = 1.0  # γ (the paper's 27.8 is for its own loss scale and batch mix)
    stages.rl.rl.ptx_data.file = SAMPLE_CORPUS
    stages.rl.rl.value_init = "@rm/hf_model"  # §3.5: the value function starts from the reward model
    stages.rl.rl.value_learning_rate = 3e-4  # its own LR (C.4 gives the value LR separately)
    stages.rl.export_hf = True

    stages.win_rate_gold = load("win_rate", "tiny")
    stages.win_rate_gold.policy_a.model.name, stages.win_rate_gold.policy_a.label = "@rl/hf_model", "PPO-ptx"
    stages.win_rate_gold.policy_b.model.name, stages.win_rate_gold.policy_b.label = "@sft/hf_model", "SFT"
    return config
