"""The GRPO family on the shared RL loop: GRPO (Shao et al. 2024), Dr. GRPO (Liu et al. 2025), DAPO (Yu et al. 2025)
and GSPO (Zheng et al. 2025); `rlaif_jax/losses/grpo.py` has the math.

    python -m rlaif_jax.main --config=configs/grpo.py:tiny --workdir=/tmp/grpo_tiny          # GRPO, toy task
    python -m rlaif_jax.main --config=configs/grpo.py:tiny_dapo --workdir=/tmp/dapo_tiny     # DAPO's settings
    python -m rlaif_jax.main --config=configs/grpo.py:smollm2 --workdir=/tmp/grpo_math       # arithmetic

The argument is SIZE or SIZE_LOSS: SIZE in tiny | smollm2 | paper, LOSS in grpo | dr_grpo | dapo | gspo (default
grpo); each loss comes with the settings its paper pairs it with (clip range, KL, DAPO's filters). `tiny`
fine-tunes on noisy toy demonstrations first (WORKDIR/sft); `smollm2` learns the verifiable arithmetic task (exact
answer + 0.1 x answer format; held-out accuracy in `gold_reward`; measured 0.047 -> 0.250 on 64 prompts at KL 5.0
in 15.6 min on 2 CPU cores, experiments/results/rl_speed.md). WORKDIR/eval_start.json and eval_end.json hold
the held-out gold reward and KL before and after, as for the other RL jobs. No GRPO-family value here is read from
a paper's full text (../shared/PAPER_FACTS.md §7): every `paper` value is UNVERIFIED.
"""

import ml_collections

from rlaif_jax import config_defaults

SIZES = ("tiny", "smollm2", "paper")
LOSSES = ("grpo", "dr_grpo", "dapo", "gspo")


def set_loss(rl: ml_collections.ConfigDict, loss: str) -> None:
    """`rl.loss` and the settings that go with it (all UNVERIFIED: PAPER_FACTS.md §7)."""
    rl.loss = loss
    rl.kl_coef = 0.04  # GRPO's β, the KL to the reference as a k3 loss term (UNVERIFIED)
    rl.clip_ratio = 0.2  # ε (UNVERIFIED)
    if loss == "dapo":
        rl.clip_ratio_high = 0.28  # clip-higher ε_high (UNVERIFIED)
        rl.kl_coef = 0.0  # DAPO drops the KL term
        rl.drop_equal_groups = True  # dynamic sampling (we mask such groups out; the paper refills the batch)
        rl.overlong_cache = max(1, rl.max_new_tokens // 5)  # soft overlong band: 4096 of 20480 tokens (UNVERIFIED)
    if loss == "gspo":
        rl.clip_ratio, rl.clip_ratio_high = 3e-4, 4e-4  # sequence-ratio clip range (UNVERIFIED)


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: SIZE or SIZE_LOSS (see the module docstring), e.g. 'tiny', 'tiny_dapo', 'paper_gspo'."""
    size, _, loss = arg.partition("_")
    loss = loss or "grpo"
    if size not in SIZES or loss not in LOSSES:
        raise ValueError(f"unknown argument {arg!r}; expected SIZE or SIZE_LOSS, SIZE in {SIZES}, LOSS in {LOSSES}")
    config = config_defaults.online_rl(size, "grpo")  # job, model, mesh, rl, train, optimizer, checkpoint, sft
    config.rl.epochs = 1
    config.rl.samples_per_prompt = 4 if size == "tiny" else 8  # G
    if size == "smollm2":
        # The verifiable arithmetic task (data/arithmetic.py): exact-answer reward plus a small format bonus; the
        # held-out evaluation is the exact-answer accuracy.
        config.rl.prompts = config_defaults.prompts("arithmetic")
        config.rl.reward = "arithmetic + 0.1*format"
        config.rl.gold_reward = "arithmetic"
        config.rl.max_prompt_length = 96  # the chat-templated word problems run to ~70 tokens
        config.rl.max_new_tokens = 32
        config.rl.temperature = config.rl.eval_temperature = 0.7
        config.rl.prompts_per_rollout = 4  # 32 sequences per rollout
        config.rl.minibatch_size = 16
        config.rl.eval_prompts = 64
    if size == "paper":
        # DeepSeekMath §4 (UNVERIFIED: not read in full text). The policy is not public: set config.model.name.
        config.model.name = ""  # set: path of the SFT policy
        config.rl.samples_per_prompt = 64  # G (UNVERIFIED)
        config.rl.prompts_per_rollout = 16  # 1024 sequences per rollout (UNVERIFIED)
        config.rl.minibatch_size = 1024  # one policy update per rollout (UNVERIFIED)
        config.rl.max_prompt_length = 1024  # (UNVERIFIED)
        config.rl.max_new_tokens = 1024  # max length 1024 (UNVERIFIED)
        config.rl.temperature = 1.0
        config.optimizer.learning_rate = 1e-6  # policy LR (UNVERIFIED)
        config.train.num_steps = 1000  # (UNVERIFIED)
    set_loss(config.rl, loss)
    return config
