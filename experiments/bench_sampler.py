"""Sampler throughput: rlaif_jax.sampling.generate vs transformers.generate, same model, prompts and lengths, one run.

    python experiments/bench_sampler.py                       # SmolLM2-135M-Instruct, float32, batch 1 and 16
    python experiments/bench_sampler.py --dtype=bfloat16      # our bf16 weights (HF stays float32)

Prints new-tokens/s for both, their ratio, and our compile time separately (first call minus a warm call). At
batch 1 decoding is bound by memory bandwidth: every new token reads all weights once. So it also prints the bound
`measured streaming-read bandwidth / weight bytes`, with the bandwidth measured in the same run (an XLA reduction
over a 1 GiB array, the best of 5), and our batch-1 tokens/s as a share of it; and the ceiling that XLA's own
matrix-vector kernel sets (`gemv_bandwidth`: the weights read by GEMVs alone), which sits below the streaming bound.
Needs the test extra (torch, accelerate) for the HF side; torch is never imported by the library itself.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from rlaif_jax import models, sampling

_TEXT = (
    "The quick brown fox jumps over the lazy dog while the researchers watch the reward curve climb slowly. "
    "Every step of reinforcement learning from AI feedback needs thousands of samples, so the sampler decides "
    "how fast an experiment runs, how many ideas a week can be tried, and how large a model fits the budget. "
)


def make_prompts(tokenizer, batch: int, prompt_tokens: int) -> list[list[int]]:
    """`batch` distinct prompts of exactly `prompt_tokens` tokens each, cut from a fixed text."""
    ids = tokenizer(_TEXT * 8)["input_ids"]
    return [ids[row : row + prompt_tokens] for row in range(batch)]


def time_ours(lm, prompts, new_tokens: int, repeats: int) -> tuple[float, float]:
    """(compile seconds, steady-state seconds per call) for our sampler at temperature 1."""
    run = lambda seed: sampling.generate(  # noqa: E731
        lm, prompts, max_new_tokens=new_tokens, temperature=1.0, rng=jax.random.key(seed), stop_tokens=[]
    )
    start = time.perf_counter()
    run(0)
    first = time.perf_counter() - start
    timings = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        out = run(seed)
        timings.append(time.perf_counter() - start)
        assert out.lengths.min() == new_tokens
    steady = float(np.median(timings))
    return max(first - steady, 0.0), steady


def streaming_read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s at which XLA streams a `gib`-GiB float32 array through a sum (best of `repeats`, after a warm call)."""
    import jax.numpy as jnp

    array = jnp.ones(int(gib * 2**30) // 4, jnp.float32)
    return array.nbytes / _best_seconds(jax.jit(jnp.sum), array, repeats=repeats)


def gemv_bandwidth(lm, repeats: int = 5) -> float:
    """Bytes/s at which XLA's own matrix-vector products read the model's weights: one jitted function computing
    `ones[1, rows] @ W` for every weight matrix (reshaped to [rows, -1]), best of `repeats`. Batch-1 decoding is
    these products plus a little: this is the ceiling XLA:CPU's GEMV kernel sets, below the streaming bound."""
    import jax.numpy as jnp

    matrices = [x.reshape(x.shape[0], -1) for x in jax.tree.leaves(lm.params) if x.ndim >= 2]

    @jax.jit
    def products(matrices):
        return sum(jnp.sum(jnp.ones((1, w.shape[0]), w.dtype) @ w) for w in matrices)

    return sum(w.nbytes for w in matrices) / _best_seconds(products, matrices, repeats=repeats)


def _best_seconds(fn, *args, repeats: int) -> float:
    """The fastest of `repeats` timed calls `fn(*args)` (results awaited), after one warm call that compiles."""
    fn(*args).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return best


def weight_bytes(lm) -> int:
    """Bytes of every parameter: what one decoding step reads at batch 1 (the KV cache adds little at 128 tokens)."""
    return int(sum(x.nbytes for x in jax.tree.leaves(lm.params)))


def time_hf(hf_model, prompts, new_tokens: int, repeats: int) -> float:
    """Steady-state seconds per `transformers.generate` call (sampling, temperature 1, no top-k/top-p)."""
    import torch

    inputs = torch.tensor(prompts)
    kwargs = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        attention_mask=torch.ones_like(inputs),
        pad_token_id=0,
    )
    with torch.inference_mode():
        hf_model.generate(inputs, **kwargs)  # warm-up
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = hf_model.generate(inputs, **kwargs)
            timings.append(time.perf_counter() - start)
            assert out.shape[1] == inputs.shape[1] + new_tokens
    return float(np.median(timings))


def load_hf_reference(path: str):
    """transformers' own loading of the same checkpoint (GGUF or HF directory)."""
    import os

    import torch
    import transformers

    torch.manual_seed(0)
    if path.endswith(".gguf"):
        return transformers.AutoModelForCausalLM.from_pretrained(
            os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
        ).eval()
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="float32", help="our parameter/activation dtype (HF runs float32)")
    parser.add_argument("--batch_sizes", default="1,16")
    parser.add_argument("--prompt_tokens", type=int, default=64)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    lm = models.with_layer_layout(models.load(args.model, dtype=args.dtype), scan_layers=False)  # a fixed model
    hf_model = load_hf_reference(models.loading._resolve(args.model))
    results = []
    bandwidth = streaming_read_bandwidth()
    bound = bandwidth / weight_bytes(lm)  # tokens/s at batch 1 if every step only streamed the weights
    gemv_ceiling = gemv_bandwidth(lm) / weight_bytes(lm)  # ... if every step were only XLA's GEMVs over them
    print(f"model={args.model} ours={args.dtype} hf=float32 prompt={args.prompt_tokens} new={args.new_tokens}")
    print(
        f"streaming read {bandwidth / 1e9:.1f} GB/s, weights {weight_bytes(lm) / 1e6:.0f} MB: batch-1 bound "
        f"{bound:.1f} tok/s; XLA's GEMVs over the same weights alone: {gemv_ceiling:.1f} tok/s"
    )
    print("| batch | ours tok/s | HF tok/s | ratio | our compile s |")
    print("|---|---|---|---|---|")
    for batch in map(int, args.batch_sizes.split(",")):
        prompts = make_prompts(lm.tokenizer, batch, args.prompt_tokens)
        compile_s, ours_s = time_ours(lm, prompts, args.new_tokens, args.repeats)
        hf_s = time_hf(hf_model, prompts, args.new_tokens, args.repeats)
        tokens = batch * args.new_tokens
        row = dict(
            batch=batch,
            ours_tokens_per_s=tokens / ours_s,
            hf_tokens_per_s=tokens / hf_s,
            ratio=hf_s / ours_s,
            our_compile_s=compile_s,
            dtype=args.dtype,
        )
        if batch == 1:
            row.update(bandwidth_gb_per_s=bandwidth / 1e9, bound_tokens_per_s=bound)
            row["share_of_bound"] = row["ours_tokens_per_s"] / bound
            row.update(gemv_ceiling_tokens_per_s=gemv_ceiling, share_of_gemv=row["ours_tokens_per_s"] / gemv_ceiling)
        results.append(row)
        print(
            f"| {batch} | {row['ours_tokens_per_s']:.1f} | {row['hf_tokens_per_s']:.1f} | {row['ratio']:.2f}x "
            f"| {compile_s:.1f} |"
        )
    for row in results:
        if "share_of_bound" in row:
            print(
                f"batch 1: ours {row['ours_tokens_per_s']:.1f} tok/s = {row['share_of_bound']:.0%} of the bound, "
                f"{row['share_of_gemv']:.0%} of XLA's GEMV ceiling"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
