"""SFT step throughput: our train step vs TRL's SFTTrainer on the same model, batch and sequence length, one run.

    python experiments/bench_train.py                    # SmolLM2-135M-Instruct, float32, batch 4 x 256 tokens

Prints tokens/s for both, their ratio (ours / TRL), our achieved FLOP/s (6 * params * tokens per step, plus
attention) and that as a fraction of a float32 matmul peak measured in the same run. Needs the test extra and trl.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlaif_jax import models
from rlaif_jax.losses.sft import sft_loss_fn
from rlaif_jax.train.step import init_train_state, make_train_step


def matmul_peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of one large square matmul on this machine (the ceiling we compare against)."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a)
    out.block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def step_flops(config: models.ModelConfig, batch: int, seq: int) -> float:
    """Training FLOPs of one step: 6 * non-embedding-params * tokens + the LM head + attention (fwd + bwd)."""
    tokens = batch * seq
    lm_head = 2 * config.hidden_size * config.vocab_size * tokens
    dense = config.num_params - config.vocab_size * config.hidden_size * (1 if config.tie_word_embeddings else 2)
    attention = 4 * config.num_layers * seq * config.num_heads * config.head_dim * tokens
    return 3 * (2 * dense * tokens + lm_head + attention)


def time_ours(lm, tokens: np.ndarray, steps: int) -> float:
    """Median seconds per step of our SFT step (AdamW, float32)."""
    optimizer = optax.adamw(1e-5)
    state = init_train_state(lm.params, optimizer)
    step = make_train_step(sft_loss_fn(lm.module), optimizer)
    batch = {
        "tokens": jnp.asarray(tokens),
        "attention_mask": jnp.ones(tokens.shape, bool),
        "loss_mask": jnp.ones(tokens.shape, bool),
    }
    rng = jax.random.key(0)
    state, metrics = step(state, batch, rng)  # compile
    jax.block_until_ready(metrics)
    timings = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch, rng)
        jax.block_until_ready(metrics)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def time_trl(hf_model, tokenizer, tokens: np.ndarray, steps: int, workdir: str) -> float:
    """Median seconds per step of TRL's SFTTrainer (AdamW, float32, no padding, no packing) after 2 warm-up steps."""
    import datasets
    import transformers
    import trl

    class StepTimer(transformers.TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    rows = np.concatenate([tokens] * (steps + 3))
    dataset = datasets.Dataset.from_dict({"input_ids": rows.tolist()})
    timer = StepTimer()
    trainer = trl.SFTTrainer(
        model=hf_model,
        args=trl.SFTConfig(
            output_dir=workdir,
            per_device_train_batch_size=tokens.shape[0],
            max_length=tokens.shape[1],
            max_steps=steps + 2,
            learning_rate=1e-5,
            optim="adamw_torch",
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            packing=False,
        ),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    return float(np.median(np.diff(timer.times[1:])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workdir", default="/tmp/bench_train_trl")
    args = parser.parse_args()

    import os

    import torch
    import transformers

    lm = models.load(args.model)
    tokens = np.random.default_rng(0).integers(0, lm.config.vocab_size, (args.batch, args.seq)).astype(np.int32)
    # The same weights as a plain float checkpoint: transformers refuses to fine-tune a GGUF-loaded model.
    hf_dir = os.path.join(args.workdir, "hf_model")
    models.save_hf(lm, hf_dir)
    peak = matmul_peak_flops()
    ours_s = time_ours(lm, tokens, args.steps)  # donates lm.params into the train state
    torch.manual_seed(0)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).train()
    trl_s = time_trl(hf_model, lm.tokenizer, tokens, args.steps, args.workdir)
    tokens_per_step = args.batch * args.seq
    flops = step_flops(lm.config, args.batch, args.seq) / ours_s
    result = dict(
        batch=args.batch,
        seq=args.seq,
        ours_tokens_per_s=tokens_per_step / ours_s,
        trl_tokens_per_s=tokens_per_step / trl_s,
        ratio=trl_s / ours_s,
        our_flops_per_s=flops,
        matmul_peak_flops_per_s=peak,
        fraction_of_peak=flops / peak,
    )
    print("| batch x seq | ours tok/s | TRL tok/s | ratio | our GFLOP/s | matmul peak GFLOP/s | fraction |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.batch} x {args.seq} | {result['ours_tokens_per_s']:.0f} | {result['trl_tokens_per_s']:.0f} "
        f"| {result['ratio']:.2f}x | {flops / 1e9:.1f} | {peak / 1e9:.1f} | {flops / peak:.2f} |"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
