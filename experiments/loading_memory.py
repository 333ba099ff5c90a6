"""Peak host memory while loading an HF checkpoint onto a mesh: block-by-block reads (`models.load`) against the
whole-tensor path (read every tensor, convert on the host, then place), side by side in one run.

    python experiments/loading_memory.py                 # SmolLM2-135M, exported to f32 safetensors, fsdp=4
    python experiments/loading_memory.py --model=DIR --fsdp=8

Each load runs in its own fresh process (fake CPU devices: device buffers live in host memory, so they count in the
process's RSS). A process reports its RSS before loading (after imports and JAX's start), its peak RSS after, and
the bytes of the parameter shards its devices hold. `overhead` loads only the tokenizer and places one small array on
the mesh: the fixed cost of a load. The last line is a JSON object; `ratio_MODE` = (peak - before - overhead) /
local shard bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def _status_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since start or the last reset) from /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> None:
    """Resets VmHWM to the current RSS (Linux >= 4.0). getrusage's ru_maxrss cannot be used: it survives exec, so a
    child would report its parent's peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(mode: str, directory: str, fsdp: int) -> dict:
    """Loads `directory` on an fsdp mesh with `mode` (sliced | whole | overhead) and measures it."""
    import jax
    import numpy as np

    from rlaif_jax import models, sharding
    from rlaif_jax.checkpoints import hf as hf_checkpoint
    from rlaif_jax.models import loading

    mesh = sharding.make_mesh(1, fsdp, 1)
    jax.block_until_ready(jax.device_put(0.0))
    _reset_peak()
    baseline = _status_bytes("VmRSS")
    if mode == "sliced":
        params = models.load(directory, mesh=mesh).params
    elif mode == "whole":
        from rlaif_jax.models import config as model_config

        with open(os.path.join(directory, "config.json")) as f:
            config = model_config.from_hf_dict(json.load(f))
        loading._load_tokenizer(directory)  # as `load` does
        host = hf_checkpoint.params_from_hf_state_dict(hf_checkpoint.read_safetensors(directory), config)
        params = loading.from_host_params(host, config, mesh=mesh).params
        del host
    else:  # what a load costs beyond its weights: the tokenizer and the first placement onto the mesh
        loading._load_tokenizer(directory)
        split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("fsdp"))
        params = {"x": sharding.place(np.zeros((fsdp, 8), np.float32), split)}
    jax.block_until_ready(params)
    local = sum(shard.data.nbytes for leaf in jax.tree.leaves(params) for shard in leaf.addressable_shards)
    return {"mode": mode, "baseline_bytes": baseline, "peak_bytes": _status_bytes("VmHWM"), "local_shard_bytes": local}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="HF directory (default: SmolLM2-135M exported to f32)")
    parser.add_argument("--fsdp", type=int, default=4)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.fsdp)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.model
        if not directory:
            from rlaif_jax import models

            directory = os.path.join(scratch, "smollm2")
            models.save_hf(models.load("smollm2-135m-instruct", dtype="float32"), directory)
        file_bytes = sum(
            os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory) if n.endswith(".safetensors")
        )
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={args.fsdp}", JAX_PLATFORMS="cpu")
        rows = {}
        for mode in ("overhead", "sliced", "whole"):
            command = [sys.executable, __file__, f"--child={mode}", f"--model={directory}", f"--fsdp={args.fsdp}"]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
    gib = 2**30
    overhead = rows["overhead"]["peak_bytes"] - rows["overhead"]["baseline_bytes"]
    local = rows["sliced"]["local_shard_bytes"]
    print(f"safetensors bytes: {file_bytes / gib:.3f} GiB; mesh fsdp={args.fsdp} (all devices on this host)")
    print(f"local shard bytes: {local / gib:.3f} GiB; fixed overhead (tokenizer, placement): {overhead / gib:.3f} GiB")
    print(
        f"{'mode':>9} {'before GiB':>11} {'peak GiB':>9} {'peak-before GiB':>16} {'(peak-before-overhead)/local':>29}"
    )
    summary = {"file_bytes": file_bytes, "fsdp": args.fsdp, "local_shard_bytes": local, "overhead_bytes": overhead}
    for mode in ("sliced", "whole"):
        row = rows[mode]
        grown = row["peak_bytes"] - row["baseline_bytes"]
        ratio = (grown - overhead) / local
        print(
            f"{mode:>9} {row['baseline_bytes'] / gib:11.3f} {row['peak_bytes'] / gib:9.3f} {grown / gib:16.3f} "
            f"{ratio:29.2f}"
        )
        summary[f"grown_{mode}"] = grown
        summary[f"ratio_{mode}"] = round(ratio, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
