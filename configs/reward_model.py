"""Reward model on preferences: InstructGPT's RM (§3.5, App. C.2) and RLAIF's RM (§2.2.1, App. G).

    python -m rlaif_jax.main --config=configs/reward_model.py:tiny --workdir=/tmp/rm_tiny          # toy pairs, ~20 s
    python -m rlaif_jax.main --config=configs/reward_model.py:smollm2 --workdir=/tmp/rm_smollm2 \
        --config.data.train_file=prefs.jsonl                      # {"prompt","chosen","rejected"[,"preference"]}
    python -m rlaif_jax.main --config=configs/reward_model.py:smollm2 --workdir=/tmp/rm_tldr \
        --config.data.source=summarize_from_feedback --config.data.train_file=openai/summarize_from_feedback

`tiny` trains a random-init 2-layer model with a zero-initialised scalar head on toy pairs (two noisy
demonstrations of a `letter: c` prompt, the one with more correct letters chosen): held-out pairwise accuracy
(WORKDIR/reward_model.json, 256 pairs from another seed) goes from 0.5 to about 0.99 in 300 steps (measured: 0.988;
~20 s on 2 CPU cores). `--config.loss.type=ranking --config.train.batch_size=16` (4-way toy rankings) reaches 0.989
over all held-out pairs, `--config.loss.type=soft_label` 0.988.
Distilled RLAIF labels: `--config.loss.type=soft_label` with a "preference" column. WORKDIR/reward_model.json also
holds the InstructGPT bias (mean reward of the demonstrations; subtract it from the RM's reward), WORKDIR/hf_model the
trained model (`models.load(dir, scalar_head=True)`). Re-running the same command resumes from WORKDIR/checkpoints.
`paper` holds InstructGPT's RM settings (K-way rankings, C.2); its 6B model and data are not public: set the paths.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy pairs, random init), 'smollm2' (SmolLM2-135M-Instruct on a JSONL file) or 'paper'."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    config = ml_collections.ConfigDict()
    config.job = "reward_model"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # train-step rng = fold_in(key(seed), step)
    config.model = config_defaults.model("tiny" if tiny else "smollm2")
    config.model.scalar_head = True  # the reward head (the pipeline adds it in any case)
    config.mesh = config_defaults.mesh()
    config.data = ml_collections.ConfigDict(
        dict(
            source="toy" if tiny else "jsonl",  # 'toy', 'jsonl', 'summarize_from_feedback' or 'hh_rlhf'
            train_file="",  # JSONL path (pairwise, or ranked for loss 'ranking'), or hub name / local file or dir
            eval_file="",  # held-out preferences; '' = toy: another seed, else eval_fraction of train_file
            eval_fraction=0.05,  # share of train_file held out when eval_file is ''
            train_split="train",  # split of a hub dataset or local directory
            eval_split="validation",  # split read from eval_file ('test' for hh_rlhf)
            eval_source="",  # source of eval_file when it differs from `source` (AI-label train, human eval)
            data_dir="",  # hh_rlhf on the hub: subset ('helpful-base', 'harmless-base'); '' = all
            demonstrations_file="",  # JSONL prompt/response whose mean reward is the bias; '' = chosen responses
            max_length=20 if tiny else 512,  # tokens per response sequence (prompt + response + EOS)
            use_chat_template=arg == "smollm2",  # wrap prompts in the tokenizer's chat template
            seed=0,  # shuffling and hold-out seed (batch of step t is a function of seed and t)
            toy_num_pairs=2048,  # toy: training prompts (pairs, or rankings for loss 'ranking')
            toy_eval_pairs=256,  # toy: held-out prompts
            toy_num_responses=4,  # toy: responses per prompt for loss 'ranking'
            toy_noise=0.5,  # toy: probability that a demonstration letter is wrong
        )
    )
    config.loss = ml_collections.ConfigDict(
        dict(type="bradley_terry")  # 'bradley_terry' (margin column), 'soft_label' (preference column), 'ranking'
    )
    config.train = ml_collections.ConfigDict(
        dict(
            num_steps=300 if tiny else 0,  # optimizer steps; 0 = num_epochs over the training data
            num_epochs=1,  # passes over the training data when num_steps is 0
            stop_at_step=0,  # stop early at this step (as if preempted); 0 = run to the end
            batch_size=32 if tiny else 8,  # pairs (or ranked prompts) per step (global)
            eval_batch_size=32 if tiny else 16,  # sequences per forward pass when scoring held-out data and the bias
            accumulation_steps=1,  # micro-batches per step
            log_every=10,  # metrics.jsonl / TensorBoard interval
            max_nonfinite_steps=3,  # stop with an error after more non-finite steps than this
        )
    )
    config.optimizer = config_defaults.optimizer(learning_rate=1e-3 if tiny else 1e-5)
    config.checkpoint = config_defaults.checkpoint(every_steps=100 if tiny else 200)
    config.export_hf = True  # write WORKDIR/hf_model (save_hf, scalar head included) at the end
    if arg == "paper":
        # InstructGPT §3.5 / App. C.2: one 6B RM (from a GPT-3 fine-tuned on NLP tasks; not public).
        config.model.name = ""  # set: path of the pretrained model the RM starts from
        config.data.train_file = ""  # set: ranked JSONL {"prompt", "responses": [best, ..., worst]}, K = 4..9 (§3.5)
        config.data.demonstrations_file = ""  # set: the labeler demonstrations (§3.5 bias: they score mean 0)
        config.data.max_length = 2048  # App. C: 2k-token context
        config.data.use_chat_template = False  # GPT-3 prompts are plain text
        config.loss.type = "ranking"  # §3.5 eq. 1: all C(K,2) pairs of a prompt in one batch element
        config.train.num_steps = 0  # C.2: one epoch (more epochs overfit)
        config.train.num_epochs = 1  # C.2
        config.train.batch_size = 64  # C.2: 64 prompts per batch
        config.optimizer.learning_rate = 9e-6  # C.2
        config.optimizer.schedule = "cosine"  # C.2: cosine decay to 10% of the initial LR
        config.optimizer.final_lr_fraction = 0.1  # C.2
        config.optimizer.warmup_steps = 0  # RM warmup not stated in C.2: UNVERIFIED (C.1's SFT uses none)
        config.optimizer.b1 = 0.9  # App. C: Adam β1
        config.optimizer.b2 = 0.95  # App. C: Adam β2
        config.optimizer.max_grad_norm = 1.0  # gradient clipping not stated: UNVERIFIED
        # fp16 with fp32 master weights (App. C) is not modelled: set config.model.dtype='bfloat16' to save memory.
    return config
