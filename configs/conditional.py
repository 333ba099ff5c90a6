"""Conditional training on control prefixes: tag SFT samples `<|good|>` / `<|bad|>` by reward quantile, fine-tune on
the tagged samples, sample with the good prefix (Korbak et al. 2023, "conditional training").

    python -m rlaif_jax.main --config=configs/conditional.py:tiny --workdir=/tmp/cond_tiny       # toy task
    python -m rlaif_jax.main --config=configs/conditional.py:smollm2 --workdir=/tmp/cond_sent    # SmolLM2, VADER

WORKDIR/data.jsonl holds every sample with its reward and tag (reused on a re-run); WORKDIR/conditional.md the
held-out gold reward and KL to the start policy of the start policy, and of the trained one with the good and with
the bad prefix. The prefixes are plain text (see rlaif_jax/pipelines/conditional.py for why). `tiny` fine-tunes a
random-init model on noisy toy demonstrations first (WORKDIR/sft); measured gold 0.48 (start) -> 0.65 with
`<|good|>` (KL 1.6 nats) and 0.26 with `<|bad|>`; the good-tagged samples it imitates average 0.74.
PAPER_FACTS.md has no section on conditional training: every `paper` value below is UNVERIFIED.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task, SFT first), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper'."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    size = "tiny" if tiny else "smollm2"
    config = ml_collections.ConfigDict()
    config.job = "conditional"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # rngs: data = fold_in(key(seed), 1); evaluation = fold_in(key(seed), 2)
    config.model = config_defaults.model(size)
    config.mesh = config_defaults.mesh()
    config.conditional = ml_collections.ConfigDict(
        dict(
            task="toy" if tiny else "sentiment",  # prompt source: 'toy' letters, 'sentiment' or 'reviews'
            reward="toy" if tiny else "sentiment",  # tags the samples: 'toy', 'sentiment', 'reward_model:RM_DIR'
            gold_reward="toy" if tiny else "sentiment",  # judge of the held-out evaluation
            use_chat_template=not tiny,  # prompts as a chat user turn (the prefix goes inside the user turn)
            max_prompt_length=24 if tiny else 72,  # prompts (with prefix) are left-padded to this many tokens
            max_new_tokens=8 if tiny else 48,  # response length cap
            train_prompts=0,  # train prompts sampled (first ones of the split); 0 = all (toy 256, sentiment 64)
            samples_per_prompt=4,  # responses sampled per train prompt from the start policy
            temperature=1.0,  # sampling temperature of the data
            good_fraction=0.25,  # top reward quantile tagged with good_prefix
            bad_fraction=0.25,  # bottom reward quantile tagged with bad_prefix (the middle is not trained on)
            good_prefix="<|good|> ",  # control text put before the prompt text (plain text, not a new token id)
            bad_prefix="<|bad|> ",  # control text of the bottom quantile
            steps=128 if tiny else 32,  # SFT optimizer steps on the tagged samples
            eval_temperature=1.0,  # evaluation sampling temperature
            eval_prompts=64 if tiny else 32,  # held-out prompts scored
        )
    )
    config.data = ml_collections.ConfigDict(dict(seed=0))  # SFT batch order (batch of step t from seed and t)
    config.train = ml_collections.ConfigDict(
        dict(
            batch_size=16 if tiny else 8,  # SFT examples per step (global)
            accumulation_steps=1,  # micro-batches per step
            log_every=8,  # metrics.jsonl interval
            stop_at_step=0,  # stop the SFT at this step (as if preempted); 0 = run to the end
            max_nonfinite_steps=3,  # stop with an error after more non-finite steps than this
        )
    )
    config.optimizer = config_defaults.optimizer(learning_rate=1e-3 if tiny else 1e-5)
    config.checkpoint = config_defaults.checkpoint(every_steps=32 if tiny else 16, keep=1)
    config.export_hf = not tiny  # write the conditioned policy to WORKDIR/hf_model
    config.sft_first = tiny  # run `config.sft` into WORKDIR/sft first and start from its result
    config.sft = config_defaults.load_config_file("sft", size)  # the SFT stage (configs/sft.py)
    config.sft.export_hf = True  # the start policy is loaded from WORKDIR/sft/hf_model
    if arg == "paper":
        # Korbak et al. 2023 (arXiv 2302.08582) condition GPT-2-small pretraining on `<|good|>` / `<|bad|>` by a
        # reward threshold and sample with `<|good|>`. Not in PAPER_FACTS.md: every value here is UNVERIFIED.
        config.model.name = ""  # set: path of the SFT policy
        config.conditional.reward = "sentiment"  # set 'reward_model:RM_DIR' for a learned reward
        config.conditional.good_prefix = "<|good|>"  # the paper's control token (a new vocab id there); UNVERIFIED
        config.conditional.bad_prefix = "<|bad|>"  # UNVERIFIED
        config.conditional.good_fraction = 0.5  # a single threshold: everything above is good; UNVERIFIED
        config.conditional.bad_fraction = 0.5  # UNVERIFIED
    return config
