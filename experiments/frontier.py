"""Reward–KL frontier of DPO against PPO on controlled sentiment (the setting of the DPO paper's Figure 2, left).

    python experiments/frontier.py --workdir=/tmp/frontier            # tiny `reviews` task, ~15 min on 2 CPU cores
    python experiments/frontier.py --workdir=/tmp/frontier --smoke    # a few steps per point, for the test suite

The task is the CPU-fast `reviews` task of rlaif_jax/data/sentiment.py: a tiny byte-level model fine-tuned on
`review: TITLE` -> `ADJ plot, ADJ cast.` demonstrations whose adjectives are positive, negative or neutral at random,
scored by VADER (the gold judge; the DPO paper uses a sentiment classifier). One SFT start is shared. DPO learns from
pairs of its samples labelled by VADER (best against worst of 4), one run per β; PPO trains on VADER itself with a
per-token KL penalty, one run per KL coefficient. Every point is (KL(π ‖ π_SFT) in nats per sequence, mean VADER)
on the held-out titles, both measured from the same number of samples at temperature 1.

Writes WORKDIR/frontier.md, frontier.json and frontier.png (reward against KL, one line per method).

Measured (~12 min on 2 shared CPU cores; SFT start VADER -0.04): PPO 0.72 / 0.66 / 0.31 / 0.11 at KL 9.1 / 5.9 /
2.0 / 1.8 nats for KL coef 0.01 / 0.05 / 0.2 / 0.5; DPO 0.34 / 0.38 at 1.8 / 2.1 nats for β = 3 / 1, but 0.23 / 0.21
/ 0.18 at 29 / 56 / 71 nats for β = 0.3 / 0.1 / 0.05. Near 2 nats the two match; the DPO paper's dominance of DPO
over PPO does not show here: at small β this byte-level model's DPO pushes the rejected reviews' likelihood down
until its samples leave the review format (β = 0.05: 'perb perb' then random bytes), the off-distribution drift
that a KL-penalised on-policy method is protected from.
"""

from __future__ import annotations

import argparse
import json
import os

from rlaif_jax import config_defaults, pipelines

DPO_BETAS = (0.05, 0.1, 0.3, 1.0, 3.0)  # DPO paper Fig. 2 sweeps β in {0.05, 0.1, 1, 5}
PPO_KL_COEFS = (0.01, 0.05, 0.2, 0.5)  # β of the per-token KL penalty in the PPO reward

PROMPT_LENGTH = 32  # `review: TITLE` prompts, byte tokens, left-padded
NEW_TOKENS = 32  # `ADJ plot, ADJ cast.` and EOS take 20-30 bytes
EVAL_PROMPTS = 128  # held-out evaluations: the 8 held-out titles, 16 samples each


def sft_config(smoke: bool):
    """configs/sft.py:tiny on the `reviews` demonstrations."""
    config = config_defaults.load_config_file("sft", "tiny")
    config.data.train_file = "reviews"
    config.data.max_length = PROMPT_LENGTH + NEW_TOKENS
    config.export_hf = True
    if smoke:
        config.train.num_steps = 10
    return config


def dpo_config(start_model: str, beta: float, smoke: bool):
    """configs/dpo.py:tiny on `reviews` prompts, pairs labelled by VADER, with this β."""
    config = config_defaults.load_config_file("dpo", "tiny")
    config.sft_first = False
    config.model.name = start_model
    data = config.data
    data.task, data.label_reward = "reviews", "sentiment"
    data.max_prompt_length, data.max_new_tokens = PROMPT_LENGTH, NEW_TOKENS
    data.max_length = PROMPT_LENGTH + NEW_TOKENS + 1
    data.num_prompts = 64  # the 16 train titles, 4 times each ...
    data.samples_per_prompt = 4  # ... with 4 samples each, every untied pair of them (DPO §6.1: 4 -> 6 pairs)
    data.pairing = "all_pairs"
    config.eval.gold_reward = "sentiment"
    config.eval.num_prompts = EVAL_PROMPTS
    config.loss.beta = beta
    if smoke:
        config.train.num_steps = 2
        config.eval.num_prompts = 8
    return config


def ppo_config(start_model: str, kl_coef: float, smoke: bool):
    """configs/ppo.py:tiny on `reviews` prompts, trained on VADER, with this KL coefficient."""
    config = config_defaults.load_config_file("ppo", "tiny")
    config.sft_first = False
    config.model.name = start_model
    rl = config.rl
    rl.prompts.task, rl.reward, rl.gold_reward = "reviews", "sentiment", "sentiment"
    rl.max_prompt_length, rl.max_new_tokens = PROMPT_LENGTH, NEW_TOKENS
    rl.eval_prompts = EVAL_PROMPTS
    rl.kl_coef = kl_coef
    if smoke:
        config.train.num_steps = 2
        rl.eval_prompts = 8
    return config


def run(workdir: str, smoke: bool) -> list[dict]:
    """Trains the shared SFT start, then every DPO β and PPO KL coefficient; one row per point."""
    sft_dir = os.path.join(workdir, "sft")
    start_model = os.path.join(sft_dir, "hf_model")
    if not os.path.exists(os.path.join(start_model, "config.json")):
        pipelines.run(sft_config(smoke), sft_dir)
    runs = [("DPO", "β", beta, f"dpo_beta{beta}", dpo_config(start_model, beta, smoke)) for beta in DPO_BETAS]
    runs += [("PPO", "KL coef", coef, f"ppo_kl{coef}", ppo_config(start_model, coef, smoke)) for coef in PPO_KL_COEFS]
    if smoke:
        runs = [runs[0], runs[len(DPO_BETAS)]]
    rows = []
    for method, knob, value, run_name, config in runs:
        results = pipelines.run(config, os.path.join(workdir, run_name))
        rows.append(
            dict(
                method=method,
                knob=knob,
                value=value,
                start_reward=results["start"]["gold_reward"],
                reward=results["end"]["gold_reward"],
                kl=results["end"]["kl"],
            )
        )
    return rows


def to_markdown(rows: list[dict]) -> str:
    """The frontier points as a Markdown table."""
    lines = [
        "| method | setting | VADER, SFT start | VADER, after | KL(π ‖ π_SFT), nats/seq |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['knob']} = {row['value']:g} | {row['start_reward']:.3f} | {row['reward']:.3f} "
            f"| {row['kl']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
    """Mean VADER against KL, one line per method sorted by KL, each point labelled with its setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for method, marker in (("DPO", "o"), ("PPO", "s")):
        points = sorted((row for row in rows if row["method"] == method), key=lambda row: row["kl"])
        if not points:
            continue
        axes.plot([p["kl"] for p in points], [p["reward"] for p in points], marker=marker, label=method)
        for p in points:
            axes.annotate(f"{p['value']:g}", (p["kl"], p["reward"]), textcoords="offset points", xytext=(4, 4))
    if rows:
        start = sum(row["start_reward"] for row in rows) / len(rows)  # each run measures the start with its own draws
        axes.axhline(start, color="gray", linestyle=":", label="SFT start")
    axes.set_xscale("symlog", linthresh=1.0)  # small-β DPO runs reach tens of nats
    axes.set_xlim(left=0.0)
    axes.set_xlabel("KL(π ‖ π_SFT), nats per sequence (symlog)")
    axes.set_ylabel("mean VADER compound (held out)")
    axes.set_title("Sentiment: reward vs KL (DPO β / PPO KL coef)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--smoke", action="store_true", help="one short point per method (for tests)")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rows = run(args.workdir, args.smoke)
    table = to_markdown(rows)
    with open(os.path.join(args.workdir, "frontier.md"), "w", encoding="utf-8") as f:
        f.write(table)
    with open(os.path.join(args.workdir, "frontier.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    plot(rows, os.path.join(args.workdir, "frontier.png"))
    print(table)


if __name__ == "__main__":
    main()
