"""Supervised fine-tuning on (prompt, response) demonstrations: the first stage of InstructGPT and of RLAIF.

    python -m rlaif_jax.main --config=configs/sft.py:tiny --workdir=/tmp/sft_tiny          # toy task, ~20 s
    python -m rlaif_jax.main --config=configs/sft.py:smollm2 --workdir=/tmp/sft_smollm2 \
        --config.data.train_file=demos.jsonl                                                 # {"prompt","response"}

`tiny` trains a random-init 2-layer model on the toy letters task: the loss falls from ~5.6 (uniform over 259
byte ids) to ~1.4 within 200 steps, the entropy floor of the noisy demonstrations (6 letters at 1.67 nats, then EOS).
Re-running the same command resumes from WORKDIR/checkpoints.
`paper` holds InstructGPT's SFT settings (§3.5, App. C.1); its model is not public, so it names a path to set.
`llama3_1b` / `llama3_8b` are shape-only (random init of those architectures, bf16 compute, f32 weights, full
remat, 8 x 2048 tokens) for compile-only memory planning:
    python experiments/aot_memory.py --config=configs/sft.py:llama3_1b --mesh=fsdp=8 --seq_len=2048 --batch_size=8
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task, random init), 'smollm2' (SmolLM2-135M-Instruct on CPU), 'paper', or the shape-only
    'llama3_1b' / 'llama3_8b'."""
    config = ml_collections.ConfigDict()
    config.job = "sft"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # train-step rng = fold_in(key(seed), step)
    planning = arg in config_defaults.PLANNING_SIZES
    if planning:
        config.model = config_defaults.planning_model(arg)
    else:
        config.model = config_defaults.model("tiny" if arg == "tiny" else "smollm2")
    config.mesh = config_defaults.mesh()
    config.data = ml_collections.ConfigDict(
        dict(
            train_file="toy" if arg == "tiny" else "",  # JSONL prompt/response, toy, toy_scores, reviews, tldr
            dataset_path="",  # train_file 'tldr': '' = the hub's CarperAI/openai_summarize_tldr, or a local copy
            split="train",  # train_file 'tldr': the split to train on
            prompt_field="prompt",  # column holding the prompt text
            response_field="response",  # column holding the demonstration
            max_length=32 if arg == "tiny" else 512,  # tokens per example (prompt + response + EOS)
            use_chat_template=arg != "tiny",  # wrap prompts in the tokenizer's chat template
            seed=0,  # shuffling seed (batch of step t is a function of seed and t)
            toy_num_rows=2048,  # toy / reviews task: number of demonstrations
            toy_noise=0.5,  # toy task: probability that a demonstration letter is wrong
        )
    )
    config.train = ml_collections.ConfigDict(
        dict(
            num_steps=200 if arg == "tiny" else 100,  # optimizer steps in the run
            stop_at_step=0,  # stop early at this step (as if preempted); 0 = run to num_steps
            batch_size=16 if arg == "tiny" else 8,  # examples per step (global)
            accumulation_steps=1,  # micro-batches per step
            log_every=10,  # metrics.jsonl / TensorBoard interval
            max_nonfinite_steps=3,  # stop with an error after more non-finite steps than this
        )
    )
    config.optimizer = config_defaults.optimizer(learning_rate=3e-3 if arg == "tiny" else 1e-5)
    config.checkpoint = config_defaults.checkpoint(every_steps=50 if arg == "tiny" else 50)
    config.export_hf = arg != "tiny"  # write WORKDIR/hf_model (save_hf) at the end
    if arg == "paper":
        # InstructGPT §3.5 / App. C.1 (1.3B and 6B models); the GPT-3 checkpoints are not public.
        config.model.name = ""  # set: path of the pretrained model to fine-tune
        config.data.max_length = 2048  # GPT-3 context
        config.train.num_steps = 16 * 12725 // 32  # 16 epochs over 12,725 SFT prompts (Table 6) at batch 32
        config.train.batch_size = 32  # C.1 (1.3B, 6B)
        config.optimizer.learning_rate = 9.65e-6  # C.1 (1.3B, 6B)
        config.optimizer.schedule = "cosine"  # C.1: cosine decay to 10% of the initial LR, no warmup
        config.optimizer.final_lr_fraction = 0.1  # C.1
        config.optimizer.warmup_steps = 0  # C.1
        # Residual dropout 0.2 (C.1) is not modelled: our transformer has no dropout.
    elif planning:
        config.data.max_length = 2048  # tokens per sequence
        config.train.batch_size = 8  # sequences per step
    elif arg not in ("tiny", "smollm2"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2', 'paper', 'llama3_1b' or 'llama3_8b'")
    return config
