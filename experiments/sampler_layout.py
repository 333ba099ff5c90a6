"""Decoding from stacked layers (what the sampler does with train-state params: no copy) against unstacking first.

    python experiments/sampler_layout.py [--model=random:smollm2_135m] [--batch_sizes=1,8] [--new_tokens=64]

Three ways to sample greedily from one model, timed side by side in one run (median of `--repeats` after a warm-up):
  stacked            `generate` on the stacked params: one scan over layers reads each layer's slice (no copy)
  unstack_per_call   a copy to per-layer trees, then `generate` (what the sampler did before: a copy per call)
  unstacked          `generate` on params unstacked once beforehand (a fixed model: labelers, the generate job)
Prints the seconds of each and the ratios to `stacked`; all three must give the same tokens.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from rlaif_jax import models, sampling


def _time(fn, repeats: int) -> tuple[float, np.ndarray]:
    tokens = fn()  # warm-up: compiles
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), tokens


def main() -> None:
    """Times the three layouts at each `--batch_sizes` and prints seconds and ratios (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:smollm2_135m")
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--prompt_tokens", type=int, default=32)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    stacked = models.with_layer_layout(models.load(args.model), scan_layers=True)
    unstacked = models.with_layer_layout(stacked, scan_layers=False)
    rng = np.random.default_rng(0)
    print(f"{args.model}: {stacked.config.num_layers} layers, f32, {args.prompt_tokens} + {args.new_tokens} tokens")
    for batch in map(int, args.batch_sizes.split(",")):
        prompts = [list(rng.integers(10, 1000, size=args.prompt_tokens)) for _ in range(batch)]

        def sample(lm, prompts=prompts):
            out = sampling.generate(lm, prompts, max_new_tokens=args.new_tokens, temperature=0.0, stop_tokens=[])
            return np.asarray(out.tokens)

        ways = {
            "stacked": lambda: sample(stacked),
            "unstack_per_call": lambda: sample(models.with_layer_layout(stacked, scan_layers=False)),
            "unstacked": lambda: sample(unstacked),
        }
        results = {name: _time(fn, args.repeats) for name, fn in ways.items()}
        reference = results["stacked"][1]
        assert all(np.array_equal(tokens, reference) for _, tokens in results.values()), "layouts disagree"
        base = results["stacked"][0]
        for name, (seconds, _) in results.items():
            print(f"batch {batch:3d}  {name:17s} {seconds:7.3f} s   stacked / this = {base / seconds:5.2f}")
    jax.clear_caches()


if __name__ == "__main__":
    main()
