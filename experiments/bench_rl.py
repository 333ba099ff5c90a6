"""One GRPO iteration, ours against TRL's `GRPOTrainer`, same model, data and lengths, side by side in one run.

    python experiments/bench_rl.py                    # SmolLM2-135M-Instruct, float32, CPU
    python experiments/bench_rl.py --iterations=2     # fewer timed iterations (the first of each side is warm-up)

An iteration: 8 prompts x 8 samples, 64-token prompts, exactly 64 new tokens (no stop token on either side: HF
`min_new_tokens`, our policy without EOS ids), the reward, policy and reference log-probs, and one optimizer step
over the 64 sequences (GRPO loss, β = 0.04, lr 1e-6). Ours is `rl_loop.train_policy` (the library's RL loop, one
device; each prompt runs once for its 8 samples, `rl.shared_prefix`, and π_old is the sampler's own log-probs,
`rl.old_logprobs='sampler'`, where TRL at `num_iterations=1` takes the current log-probs detached: neither side
runs a separate policy pass); TRL's is `GRPOTrainer.train` with HF generation (no vLLM). Each side runs
`--iterations` + 1 iterations and the first (compilation, allocator warm-up) is dropped. Prints generated tokens/s
for both, each side's split between generation and update, and `ratio R` (TRL's seconds per iteration / ours) as
the last line.
Needs the test extra (torch, trl) for TRL's side.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

PROMPTS, SAMPLES, PROMPT_TOKENS, NEW_TOKENS = 8, 8, 64, 64
_TEXT = (
    "Write a short, friendly reply to a customer who asks whether the store opens early on public holidays, "
    "and mention the new bakery counter, the parking behind the building and the loyalty card. "
)


def count_e(completions) -> list[float]:
    """The benchmark's reward (cheap, the same on both sides): how many letters 'e' a completion has."""
    return [float(text.count("e")) for text in completions]


def make_prompts(tokenizer) -> tuple[list[str], list[list[int]]]:
    """PROMPTS texts that re-tokenize to exactly PROMPT_TOKENS ids (checked), and those ids."""
    ids = tokenizer(_TEXT * 8)["input_ids"]
    texts, token_lists = [], []
    for row in range(PROMPTS):
        text = tokenizer.decode(ids[3 * row : 3 * row + PROMPT_TOKENS])
        again = tokenizer(text)["input_ids"]
        if len(again) != PROMPT_TOKENS:
            raise RuntimeError(f"prompt {row} re-tokenizes to {len(again)} tokens, not {PROMPT_TOKENS}")
        texts.append(text)
        token_lists.append(again)
    return texts, token_lists


def run_ours(model: str, texts, ids, iterations: int, workdir: str) -> dict:
    from rlaif_jax import config_defaults, sharding
    from rlaif_jax.models.setup import build_mesh, build_model
    from rlaif_jax.train import rl_loop

    config = config_defaults.load_config_file("grpo", "smollm2")
    config.model.name = model
    config.mesh.num_devices = 1
    rl = config.rl
    rl.samples_per_prompt, rl.prompts_per_rollout, rl.minibatch_size = SAMPLES, PROMPTS, PROMPTS * SAMPLES
    rl.max_prompt_length, rl.max_new_tokens, rl.temperature, rl.eval_prompts = PROMPT_TOKENS, NEW_TOKENS, 1.0, 1
    rl.kl_coef = 0.04
    rl.old_logprobs = "sampler"  # like TRL at num_iterations=1, which detaches the current log-probs as π_old
    config.optimizer.learning_rate = 1e-6
    config.train.num_steps = iterations + 1  # one step per iteration
    mesh, rules = build_mesh(config), sharding.normalize_rules(config.mesh.rules)
    policy = build_model(config.model, mesh, rules)
    policy = policy.replace(config=policy.config.replace(eos_token_ids=()))  # exactly NEW_TOKENS per sample
    reward = lambda prompts, completions: np.asarray(count_e(completions), np.float32)  # noqa: E731
    task = rl_loop.RLTask(texts, ids, texts[:1], ids[:1], reward_fn=reward, gold_fn=reward)
    rl_loop.train_policy(config, workdir, policy, task, mesh=mesh, rules=rules)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))][1:]
    assert all(row["response_length"] == NEW_TOKENS for row in rows)
    generate = float(np.mean([row["rollout_seconds"] for row in rows]))
    update = float(np.mean([row["update_seconds"] for row in rows]))
    return {"generate_s": generate, "update_s": update, "iteration_s": generate + update}


def run_trl(hf_dir: str, texts, iterations: int, workdir: str) -> dict:
    """TRL's side on `hf_dir`, an HF checkpoint of the same float32 weights (TRL refuses to train a model loaded
    from GGUF: transformers marks it quantized)."""
    import datasets
    import torch
    import transformers
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    args = GRPOConfig(
        output_dir=workdir,
        per_device_train_batch_size=PROMPTS * SAMPLES,
        num_generations=SAMPLES,
        max_completion_length=NEW_TOKENS,
        generation_kwargs={"min_new_tokens": NEW_TOKENS},
        temperature=1.0,
        beta=0.04,
        loss_type="grpo",
        learning_rate=1e-6,
        max_steps=iterations + 1,
        gradient_accumulation_steps=1,
        num_iterations=1,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
    )
    trainer = GRPOTrainer(
        model=hf_model,
        reward_funcs=[lambda completions, **kwargs: count_e(completions)],
        args=args,
        train_dataset=datasets.Dataset.from_dict({"prompt": texts}),
        processing_class=tokenizer,
    )
    timings = {"generate": [], "step": []}
    generate_and_score = trainer._generate_and_score_completions

    def timed_generate(*a, **k):
        start = time.perf_counter()
        out = generate_and_score(*a, **k)
        timings["generate"].append(time.perf_counter() - start)
        assert out["completion_ids"].shape[1] == NEW_TOKENS
        return out

    trainer._generate_and_score_completions = timed_generate

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            timings["step"].append(time.perf_counter() - self.start)

    trainer.add_callback(StepTimer())
    trainer.train()
    step = float(np.mean(timings["step"][1:]))
    generate = float(np.mean(timings["generate"][1:]))
    return {"generate_s": generate, "update_s": step - generate, "iteration_s": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per side (after one warm-up)")
    args = parser.parse_args()

    from rlaif_jax import models

    with tempfile.TemporaryDirectory() as tmp:
        lm = models.load(args.model)
        texts, ids = make_prompts(lm.tokenizer)
        hf_dir = os.path.join(tmp, "hf_model")
        models.save_hf(lm, hf_dir)  # the same weights for TRL (tests/models/test_save_hf.py: same logits)
        del lm
        ours = run_ours(args.model, texts, ids, args.iterations, os.path.join(tmp, "ours"))
        trl = run_trl(hf_dir, texts, args.iterations, os.path.join(tmp, "trl"))
    tokens = PROMPTS * SAMPLES * NEW_TOKENS
    print(f"model={args.model} float32, {PROMPTS} prompts x {SAMPLES} samples, {PROMPT_TOKENS}+{NEW_TOKENS} tokens")
    print("| side | generated tok/s | generate s | update s | iteration s | generate share |")
    print("|---|---|---|---|---|---|")
    for name, row in (("ours", ours), ("TRL GRPOTrainer", trl)):
        print(
            f"| {name} | {tokens / row['iteration_s']:.1f} | {row['generate_s']:.2f} | {row['update_s']:.2f} "
            f"| {row['iteration_s']:.2f} | {row['generate_s'] / row['iteration_s']:.0%} |"
        )
    print(json.dumps({"ours": ours, "trl": trl}))
    print(f"ratio R = {trl['iteration_s'] / ours['iteration_s']:.2f}")


if __name__ == "__main__":
    main()
