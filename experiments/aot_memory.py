"""Compile-only planning: lowers and compiles a config's train step from shapes alone and prints XLA's per-device
memory and FLOPs, before any parameter exists.

    python experiments/aot_memory.py --config=configs/sft.py:llama3_1b --mesh=fsdp=8 --seq_len=2048 --batch_size=8
    python experiments/aot_memory.py --config=configs/dpo.py:llama3_8b --mesh=fsdp=64 --seq_len=2048 \
        --batch_size=64 --config.model.remat=full
    python experiments/aot_memory.py --config=configs/ppo.py:llama3_1b --mesh=fsdp=4,tensor=2 --seq_len=2048 \
        --batch_size=8 --prompt_len=1024

The mesh is made of fake CPU devices (`--xla_force_host_platform_device_count`, set here from `--mesh`), so the
figures are those of XLA:CPU's compiler for that partitioning: the shardings, all-gathers and buffer sizes are the
real ones; fusion and scheduling differ on GPU / TPU (experiments/device_profile.py compares them with a GPU's
measured peak memory). `--topology=v5e:2x4` compiles for a TPU topology instead, where libtpu is installed.
The last line printed is one JSON object: argument / output / alias / temp / peak bytes and FLOPs per device.
"""

from __future__ import annotations

import json
import math
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config (configs/*.py:ARG)", lock_config=False)
_MESH = flags.DEFINE_string("mesh", "fsdp=8", "mesh axis sizes, e.g. 'fsdp=8' or 'data=2,fsdp=4,tensor=2'")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 2048, "tokens per sequence")
_BATCH = flags.DEFINE_integer("batch_size", 8, "global sequences (pairs for DPO / reward models) per step")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 0, "online RL: prompt tokens of seq_len (0 = half)")
_TOPOLOGY = flags.DEFINE_string("topology", "", "compile for a TPU topology such as 'v5e:2x4' (needs libtpu)")


def parse_mesh(text: str) -> dict[str, int]:
    """'fsdp=4,tensor=2' -> {'data': 1, 'fsdp': 4, 'tensor': 2}; names the bad part otherwise."""
    sizes = {"data": 1, "fsdp": 1, "tensor": 1}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in sizes or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--mesh: {part!r} is not AXIS=N with AXIS one of {sorted(sizes)}")
        sizes[name] = int(value)
    return sizes


def _fake_device_count(argv: list[str]) -> int:
    """The device count of `--mesh` read from argv before JAX starts (absl has not parsed flags yet)."""
    text = next((a.split("=", 1)[1] for a in argv if a.startswith("--mesh=")), _MESH.default)
    return math.prod(parse_mesh(text).values())


def main(argv):
    del argv
    import jax

    from rlaif_jax import sharding
    from rlaif_jax.train import planning

    config = _CONFIG.value
    sizes = parse_mesh(_MESH.value)
    devices = None
    if _TOPOLOGY.value:
        from jax.experimental import topologies

        devices = topologies.get_topology_desc(platform="tpu", topology_name=_TOPOLOGY.value).devices
    mesh = sharding.make_mesh(**sizes, devices=devices)
    plan = planning.plan_train_step(
        config, mesh, batch_size=_BATCH.value, seq_len=_SEQ_LEN.value, prompt_len=_PROMPT_LEN.value or None
    )
    stats = planning.compile_stats(plan)
    gib = 2**30
    cfg = plan.model_config
    print(
        f"{config.job} on {cfg.num_params / 1e9:.2f}B params ({cfg.num_layers} layers, d={cfg.hidden_size}, "
        f"vocab {cfg.vocab_size}), mesh {dict(mesh.shape)} on {jax.devices()[0].platform if devices is None else 'tpu'}"
        f", batch {_BATCH.value} x seq {_SEQ_LEN.value}, dtype {cfg.dtype} / params {cfg.param_dtype}, "
        f"remat {cfg.remat}, vocab chunk {cfg.vocab_chunk_size}"
    )
    for name in ("argument_bytes", "output_bytes", "alias_bytes", "temp_bytes", "peak_estimate_bytes"):
        print(f"  {name:22s} {stats[name] / gib:8.3f} GiB per device")
    print(f"  {'flops':22s} {stats['flops'] / 1e12:8.3f} TFLOP per device per step")
    print(f"  {'collectives':22s} {stats['collectives']} (a scanned layer's body counted once)")
    record = {
        "config": sys.argv[1] if len(sys.argv) > 1 else "",
        "job": config.job,
        "mesh": dict(mesh.shape),
        "topology": _TOPOLOGY.value or "cpu-fake",
        "batch_size": _BATCH.value,
        "seq_len": _SEQ_LEN.value,
        "num_params": plan.num_params,
        "dtype": cfg.dtype,
        "param_dtype": cfg.param_dtype,
        "remat": cfg.remat,
        "vocab_chunk_size": cfg.vocab_chunk_size,
        **stats,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    if not any(a.startswith("--topology=") and a != "--topology=" for a in sys.argv):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_fake_device_count(sys.argv)}"
        )
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    app.run(main)
