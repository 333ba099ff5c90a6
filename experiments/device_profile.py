"""One prepared run on an accelerator: the ceilings, attention implementations, train-step speed and memory (XLA's
compile-time estimate against the device's measured peak), and sampler throughput.

    python experiments/device_profile.py --out=/tmp/profile          # every section, each in its own process

Sections (each prints one JSON line; the driver runs them one after another, never side by side, and writes
OUT/device_profile.jsonl and a Markdown table OUT/device_profile.md):
  ceilings         bf16 matmul TFLOP/s (8192^3) and device-to-device copy bandwidth, measured here
  attention        cuDNN flash vs XLA attention (GQA, causal, left-padded keys): max |Δ| of output and gradients,
                   time of forward + backward at 4 x 2048 tokens
  window_attention the same with a sliding window of 512 (Mistral, Gemma 3's local layers), both against the
                   float32 banded einsum
  train:CFG:B:S    a config's train step (experiments/aot_memory.py's plan) at B sequences x S tokens on one
                   device: compile-time memory analysis, measured peak bytes in use, step time, tokens/s, and MFU
                   (analytic model FLOPs / step time / the measured bf16 matmul ceiling, and / 989 TFLOP/s)
  sample:ARCH:B    sampler tokens/s of a random-init architecture at batch B (64 prompt + 128 new tokens, bf16)
Random weights everywhere: speed and memory do not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

DATASHEET_BF16_FLOPS = 989e12  # H100 / H200 SXM dense bf16 (datasheet)

SECTIONS = [  # in order of importance: a run cut short by its time limit keeps the first ones
    "ceilings",
    "attention",
    "train:configs/sft.py:llama3_1b:8:2048",
    "train:configs/sft.py:llama3_1b:8:2048:attention=xla",
    "train:configs/ppo.py:llama3_1b:8:2048",
    "train:configs/dpo.py:llama3_1b:4:2048",
    "sample:smollm2_135m:1",
    "sample:llama3_1b:16",
    "train:configs/sft.py:llama3_1b:8:2048:vocab_chunk_size=0",
    "train:configs/sft.py:smollm2:16:1024:random",
    "window_attention",
    "train:configs/sft.py:smollm2:16:1024:random=gemma3_270m",
    "sample:gemma3_270m:16",
]


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    import jax
    import numpy as np

    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def ceilings() -> dict:
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(0), 2)
    a, b = (jax.random.normal(k, (8192, 8192), jnp.bfloat16) for k in keys)
    matmul = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32).astype(jnp.bfloat16))
    seconds = _median_seconds(lambda: matmul(a, b), 10, 3)
    x = jax.random.normal(keys[0], (2**29,), jnp.float32)  # 2 GiB
    copy = jax.jit(lambda v: v * 1.0001)
    copy_seconds = _median_seconds(lambda: copy(x), 10, 3)
    return {
        "bf16_matmul_tflops": 2 * 8192**3 / seconds / 1e12,
        "copy_bandwidth_gbs": 2 * x.nbytes / copy_seconds / 1e9,
        "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__,
    }


def attention() -> dict:
    """XLA vs cuDNN through `models.attention.attend` (key mask [B, 1, 1, T] + causal), and two raw cuDNN calls:
    the full mask [B, 1, S, T] without the causal flag, and the causal flag alone (no padding)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlaif_jax.models.attention import attend

    batch, seq, heads, kv_heads, head_dim = 4, int(os.environ.get("PROFILE_ATTENTION_SEQ", 2048)), 32, 8, 64
    keys = jax.random.split(jax.random.key(1), 3)
    q = jax.random.normal(keys[0], (batch, seq, heads, head_dim), jnp.bfloat16)
    k = jax.random.normal(keys[1], (batch, seq, kv_heads, head_dim), jnp.bfloat16)
    v = jax.random.normal(keys[2], (batch, seq, kv_heads, head_dim), jnp.bfloat16)
    valid = np.ones((batch, seq), bool)
    valid[1, : seq // 7] = False  # a left-padded row
    key_mask = jnp.asarray(valid)[:, None, None, :]
    full_mask = key_mask & jnp.tril(jnp.ones((seq, seq), bool))[None, None]
    scale = head_dim**-0.5
    variants = {
        "xla": lambda q, k, v: attend(q, k, v, key_mask, causal=True, implementation="xla"),
        "cudnn": lambda q, k, v: attend(q, k, v, key_mask, causal=True, implementation="cudnn"),
        "cudnn_full_mask": lambda q, k, v: jax.nn.dot_product_attention(
            q, k, v, mask=full_mask, scale=scale, implementation="cudnn"
        ),
        "cudnn_causal_only": lambda q, k, v: jax.nn.dot_product_attention(
            q, k, v, is_causal=True, scale=scale, implementation="cudnn"
        ),
    }
    real = jnp.asarray(valid)[..., None, None]
    result, outputs = {}, {}
    for name, fn in variants.items():

        def loss(q, k, v, fn=fn):
            out = fn(q, k, v)
            return jnp.sum(jnp.where(real, out.astype(jnp.float32), 0.0) ** 2), out

        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
        try:
            (_, out), grads = step(q, k, v)
            outputs[name] = (np.asarray(out, np.float32), [np.asarray(g, np.float32) for g in grads])
            seconds = _median_seconds(lambda step=step: step(q, k, v), 10)
            flops = 4 * batch * heads * head_dim * seq * seq * 3.5 / 2  # causal: fwd 2 matmuls, bwd 5; half the square
            result[f"{name}_fwd_bwd_ms"] = seconds * 1e3
            result[f"{name}_tflops"] = flops / seconds / 1e12
        except Exception as error:  # noqa: BLE001  (reported, not fatal: cuDNN may refuse a mask or shape)
            result[f"{name}_error"] = f"{type(error).__name__}: {str(error)[:300]}"
    if "xla" in outputs:
        out_x, grads_x = outputs["xla"]
        rows = valid[..., None, None]
        for name, (out, grads) in outputs.items():
            if name == "xla":
                continue
            compare = (
                rows if name != "cudnn_causal_only" else np.ones_like(rows) & valid.all(axis=1)[:, None, None, None]
            )
            result[f"{name}_max_abs_diff_out"] = float(np.max(np.abs(np.where(compare, out_x - out, 0))))
            result[f"{name}_finite"] = bool(np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads))
            if name == "cudnn":
                result["cudnn_max_rel_diff_grads"] = max(
                    float(np.max(np.abs(gx - gc)) / max(np.max(np.abs(gx)), 1e-30)) for gx, gc in zip(grads_x, grads)
                )
    return result


def train(spec: str, matmul_tflops: float) -> dict:
    import jax

    from rlaif_jax import config_defaults, sharding
    from rlaif_jax.train import planning

    parts = spec.split(":")
    config_path, arg, batch, seq = parts[0], parts[1], int(parts[2]), int(parts[3])
    overrides = parts[4:]
    config = config_defaults.load_config_file(os.path.splitext(os.path.basename(config_path))[0], arg)
    for override in overrides:
        if override.startswith("random"):  # a config naming a checkpoint: its architecture (or random=ARCH) at random
            config.model.name = "random:" + (override.partition("=")[2] or "smollm2_135m")
            config.model.dtype, config.model.param_dtype = "bfloat16", "float32"
            continue
        name, value = override.split("=")
        config.model[name] = type(config.model[name])(value)
    mesh = sharding.make_mesh(fsdp=1, devices=jax.devices()[:1])
    plan = planning.plan_train_step(config, mesh, batch_size=batch, seq_len=seq)
    compile_start = time.perf_counter()
    stats = planning.compile_stats(plan)
    compile_seconds = time.perf_counter() - compile_start
    state, batch_arrays, frozen = planning.materialize(plan)
    rng = jax.random.key(0)
    holder = {"state": state}

    def step():
        holder["state"], metrics = plan.train_step(holder["state"], batch_arrays, rng, frozen)
        return metrics["loss"]

    seconds = _median_seconds(step, 5, 2)
    loss = float(step())
    memory = jax.devices()[0].memory_stats() or {}
    return {
        "spec": spec,
        "params": plan.num_params,
        "compile_s": compile_seconds,
        "aot_argument_gib": stats["argument_bytes"] / 2**30,
        "aot_temp_gib": stats["temp_bytes"] / 2**30,
        "aot_peak_gib": stats["peak_estimate_bytes"] / 2**30,
        "measured_peak_gib": memory.get("peak_bytes_in_use", float("nan")) / 2**30,
        "step_ms": seconds * 1e3,
        "tokens_per_s": plan.tokens_per_step / seconds,
        "model_tflops_per_s": plan.model_flops / seconds / 1e12,
        "mfu_vs_datasheet": plan.model_flops / seconds / DATASHEET_BF16_FLOPS,
        "mfu_vs_measured_matmul": plan.model_flops / seconds / (matmul_tflops * 1e12) if matmul_tflops else None,
        "loss_finite": bool(loss == loss),
    }


def sample(spec: str) -> dict:
    import jax
    import numpy as np

    from rlaif_jax import models, sampling

    arch, batch = spec.split(":")
    lm = models.load(f"random:{arch}", dtype="bfloat16")
    prompt_tokens, new_tokens = 64, 128
    prompts = np.random.default_rng(0).integers(3, lm.config.vocab_size, (int(batch), prompt_tokens)).tolist()

    def run(seed=0):
        return sampling.generate(
            lm, prompts, max_new_tokens=new_tokens, temperature=1.0, rng=jax.random.key(seed), stop_tokens=[]
        ).tokens

    start = time.perf_counter()
    jax.block_until_ready(run())
    first = time.perf_counter() - start
    seconds = _median_seconds(run, 3, 0)
    weight_bytes = sum(x.nbytes for x in jax.tree.leaves(lm.params))
    return {
        "spec": spec,
        "new_tokens_per_s": int(batch) * new_tokens / seconds,
        "ms_per_decode_step": seconds / new_tokens * 1e3,
        "first_call_s": first,
        "weight_gib": weight_bytes / 2**30,
        "weight_read_gbs_per_step": weight_bytes / (seconds / new_tokens) / 1e9,
    }


def window_attention() -> dict:
    """Causal attention with a sliding window of 512 over 4 x 2048 bf16 tokens (one left-padded row): XLA (its
    `local_window_size`) and cuDNN (the band in its full mask) against the float32 banded einsum; forward + backward
    times."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlaif_jax.models.attention import attend, reference_attention

    batch, seq, heads, kv_heads, head_dim, window = 4, 2048, 8, 4, 128, 512
    keys = jax.random.split(jax.random.key(2), 3)
    q = jax.random.normal(keys[0], (batch, seq, heads, head_dim), jnp.bfloat16)
    k = jax.random.normal(keys[1], (batch, seq, kv_heads, head_dim), jnp.bfloat16)
    v = jax.random.normal(keys[2], (batch, seq, kv_heads, head_dim), jnp.bfloat16)
    valid = np.ones((batch, seq), bool)
    valid[1, : seq // 7] = False
    key_mask = jnp.asarray(valid)[:, None, None, :]
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    want = np.asarray(reference_attention(f32(q), f32(k), f32(v), key_mask, causal=True, window=window))
    result = {}
    for name in ("xla", "cudnn"):

        def loss(q, k, v, name=name):
            out = attend(q, k, v, key_mask, causal=True, implementation=name, window=window)
            return jnp.sum(jnp.where(jnp.asarray(valid)[..., None, None], f32(out), 0.0) ** 2), out

        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
        try:
            (_, out), _ = step(q, k, v)
            diff = np.abs(np.asarray(out, np.float32) - want)[valid]
            result[f"{name}_max_abs_diff_vs_f32_einsum"] = float(diff.max())
            result[f"{name}_fwd_bwd_ms"] = _median_seconds(lambda step=step: step(q, k, v), 10) * 1e3
        except Exception as error:  # noqa: BLE001  (reported, not fatal)
            result[f"{name}_error"] = f"{type(error).__name__}: {str(error)[:300]}"
    return result


def run_section(section: str, matmul_tflops: float) -> dict:
    kind, _, spec = section.partition(":")
    if kind == "ceilings":
        return ceilings()
    if kind == "attention":
        return attention()
    if kind == "window_attention":
        return window_attention()
    if kind == "train":
        return train(spec, matmul_tflops)
    if kind == "sample":
        return sample(spec)
    raise ValueError(f"unknown section {section!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", default="", help="run one section in this process")
    parser.add_argument("--matmul_tflops", type=float, default=0.0, help="the measured ceiling, for MFU")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/device_profile"))
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated; default: all")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per section")
    args = parser.parse_args()
    if args.section:
        print("RESULT " + json.dumps({"section": args.section, **run_section(args.section, args.matmul_tflops)}))
        return
    os.makedirs(args.out, exist_ok=True)
    results, matmul = [], 0.0
    for section in args.sections.split(","):
        command = [sys.executable, __file__, "--section", section, "--matmul_tflops", str(matmul)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            record = json.loads(lines[-1][7:]) if lines else {"section": section, "error": done.stderr[-1500:]}
        except subprocess.TimeoutExpired:
            record = {"section": section, "error": f"timed out after {args.timeout} s"}
        record["wall_s"] = round(time.perf_counter() - start, 1)
        matmul = record.get("bf16_matmul_tflops", matmul)
        results.append(record)
        print(json.dumps(record), flush=True)
        with open(os.path.join(args.out, "device_profile.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
    lines = ["| section | figures |", "|---|---|"]
    for record in results:
        figures = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "section"
        )
        lines.append(f"| {record['section']} | {figures} |")
    with open(os.path.join(args.out, "device_profile.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
