"""On-policy RL from one shared start: REINFORCE, RLOO, PPO, PPO-ptx, GRPO, Dr. GRPO, DAPO and GSPO on the toy
letters task (`tiny`), or
REINFORCE and PPO on SmolLM2 controlled sentiment with VADER as the gold judge (`smollm2`).

    python experiments/rl_toy.py --workdir=/tmp/rl_toy            # toy task, ~3 min on 2 CPU cores
    python experiments/rl_toy.py --workdir=/tmp/rl_toy --smoke    # seconds: a few steps, for the test suite
    python experiments/rl_toy.py --workdir=/tmp/rl_sent --size=smollm2 --methods=reinforce   # ~25 min per method

Writes WORKDIR/rl_toy.md (a Markdown table: held-out gold reward and KL to the SFT policy before and after) and
WORKDIR/rl_toy.json, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os

from rlaif_jax import config_defaults, pipelines
from rlaif_jax.train.rl_loop import samples_per_prompt

METHODS = {  # name -> (run directory, config file, its argument after the size, overrides)
    "REINFORCE (RLAIF App. F)": ("reinforce", "reinforce", "", {}),
    "REINFORCE, per-token baseline V(x, y<t)": ("reinforce_per_token", "reinforce", "", {"rl.baseline": "per_token"}),
    "RLOO (k=4)": ("rloo", "rloo", "", {}),
    "PPO": ("ppo", "ppo", "", {}),
    "PPO-ptx (γ=1)": ("ppo_ptx", "ppo", "", {"rl.ptx_coef": 1.0}),
    "GRPO (G=4)": ("grpo", "grpo", "", {}),
    "Dr. GRPO (G=4)": ("dr_grpo", "grpo", "_dr_grpo", {}),
    "DAPO (G=4)": ("dapo", "grpo", "_dapo", {}),
    "GSPO (G=4)": ("gspo", "grpo", "_gspo", {}),
}


def _set(config, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for parent in parents:
        node = node[parent]
    node[leaf] = value


def run(workdir: str, smoke: bool, size: str = "tiny", methods: tuple[str, ...] | None = None) -> list[dict]:
    """Runs the shared start (SFT on the toy task; SmolLM2-Instruct as is for sentiment), then each method from it;
    returns one result row per method. `methods` filters by run directory name (e.g. 'ppo', 'reinforce')."""
    start_model = None
    if size == "tiny":
        sft_config = config_defaults.load_config_file("sft", "tiny")
        sft_config.export_hf = True
        if smoke:
            sft_config.train.num_steps = 20
        sft_dir = os.path.join(workdir, "sft")
        if not os.path.exists(os.path.join(sft_dir, "hf_model", "config.json")):
            pipelines.run(sft_config, sft_dir)
        start_model = os.path.join(sft_dir, "hf_model")
    rows = []
    for name, (run_name, config_name, arg_suffix, overrides) in METHODS.items():
        if methods is not None and run_name not in methods:
            continue
        config = config_defaults.load_config_file(config_name, size + arg_suffix)
        config.sft_first = False
        if start_model is not None:
            config.model.name = start_model
        if smoke:
            rl = config.rl
            steps_per_iteration = rl.epochs * rl.prompts_per_rollout * samples_per_prompt(rl) // rl.minibatch_size
            config.train.num_steps = steps_per_iteration  # one iteration
            config.rl.eval_prompts = 8
        for key, value in overrides.items():
            _set(config, key, value)
        results = pipelines.run(config, os.path.join(workdir, run_name))
        rows.append(
            dict(
                method=name,
                start_gold=results["start"]["gold_reward"],
                end_gold=results["end"]["gold_reward"],
                end_kl=results["end"]["kl"],
                steps=config.train.num_steps,
            )
        )
    return rows


def to_markdown(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| method | optimizer steps | gold reward, SFT start | gold reward, after RL | KL(π ‖ π_SFT), nats/seq |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        gold = f"{row['start_gold']:.3f} | {row['end_gold']:.3f}"
        lines.append(f"| {row['method']} | {row['steps']} | {gold} | {row['end_kl']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--smoke", action="store_true", help="a few steps per method (for tests)")
    parser.add_argument("--size", default="tiny", choices=("tiny", "smollm2"), help="toy task or SmolLM2 sentiment")
    parser.add_argument("--methods", default="", help="comma-separated run names (reinforce,rloo,ppo,grpo,dapo,...)")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rows = run(args.workdir, args.smoke, args.size, tuple(args.methods.split(",")) if args.methods else None)
    table = to_markdown(rows)
    with open(os.path.join(args.workdir, "rl_toy.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.workdir, "rl_toy.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(table)


if __name__ == "__main__":
    main()
