"""The `generate` job: answer a list of prompts, appending one JSON line per completion to generations.jsonl.

A re-run resumes after the last prompt with all its samples written; prompt i's samples are drawn from
fold_in(key(seed), i), so a resumed (or re-batched) run writes what an uninterrupted one would.
"""

from __future__ import annotations

import collections
import json
import os
import time

import jax
import jax.numpy as jnp
from tqdm import tqdm

from rlaif_jax import models, sampling, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.tokenize import encode_prompt
from rlaif_jax.models.setup import build_mesh, build_model

GENERATIONS_FILE = "generations.jsonl"


def read_prompts(path: str) -> list[str]:
    """Prompts from a .txt file (one per non-empty line) or a .jsonl file (a string field "prompt" per row)."""
    if path.endswith(".jsonl"):
        return [row["prompt"] for row in read_jsonl(path, ("prompt",))]
    if not run_dir.path(path).is_file():
        raise FileNotFoundError(f"prompts_file not found: {path}")
    with run_dir.path(path).open(encoding="utf-8") as f:
        prompts = [line.rstrip("\n") for line in f if line.strip()]
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def _answered(path: str, num_samples: int) -> int:
    """How many leading prompts generations.jsonl fully answers (all `num_samples` rows written).

    Rows past the first prompt that lacks a sample (a batch cut off by a kill, a torn last line) are dropped by an
    atomic rewrite, never by rewriting the rows before them in place.
    """
    if not run_dir.exists(path):
        return 0
    with run_dir.path(path).open(encoding="utf-8") as f:
        lines = f.readlines()
    complete = [line for line in lines if line.endswith("\n")]
    indices = [json.loads(line)["prompt_index"] for line in complete]
    counts = collections.Counter(indices)
    done = 0
    while counts[done] >= num_samples:
        done += 1
    kept = [line for line, index in zip(complete, indices) if index < done]
    if len(kept) != len(lines):
        run_dir.write_text_atomic(path, "".join(kept))
    return done


def run(config, workdir: str) -> str:
    """Answers `config.prompts` (or `config.prompts_file`); returns the path of generations.jsonl."""
    run_dir.write_config(config, workdir)
    prompts = read_prompts(config.prompts_file) if config.prompts_file else list(config.prompts)
    output_path = os.path.join(workdir, GENERATIONS_FILE)
    done = _answered(output_path, config.sampling.num_samples)
    if done >= len(prompts):
        print(f"all {len(prompts)} prompts already answered in {output_path}")
        return output_path

    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    lm = build_model(config.model, mesh, rules, strict=config.mesh.get("strict", False))
    lm = models.with_layer_layout(lm, scan_layers=False)  # a fixed model: unstacked once, decodes faster
    sampling_config = config.sampling
    token_ids = []
    for index, prompt in enumerate(prompts):
        ids = encode_prompt(lm.tokenizer, prompt, use_chat_template=config.use_chat_template)
        if len(ids) + sampling_config.max_new_tokens > lm.config.max_position_embeddings:
            source = config.prompts_file or "config.prompts"
            raise ValueError(
                f"{source}: prompt {index} has {len(ids)} tokens; with max_new_tokens="
                f"{sampling_config.max_new_tokens} it exceeds the context of {lm.config.max_position_embeddings}"
            )
        token_ids.append(ids)

    rng = jax.random.key(config.seed)
    generated_tokens, start = 0, time.perf_counter()
    with run_dir.open_append(output_path) as out, run_dir.MetricsWriter(workdir, tensorboard=False) as metrics:
        batch_starts = range(done, len(prompts), config.batch_size)
        for batch_start in tqdm(batch_starts, desc="generating", unit="batch"):
            batch = list(range(batch_start, min(batch_start + config.batch_size, len(prompts))))
            result = sampling.generate(
                lm,
                [token_ids[i] for i in batch],
                max_new_tokens=sampling_config.max_new_tokens,
                temperature=sampling_config.temperature,
                top_k=sampling_config.top_k,
                top_p=sampling_config.top_p,
                num_samples=sampling_config.num_samples,
                prompt_rngs=jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.asarray(batch)),
            )
            for row, (text, length) in enumerate(zip(result.texts, result.lengths)):
                index = batch[row // sampling_config.num_samples]
                record = dict(prompt_index=index, prompt=prompts[index], completion=text, num_tokens=int(length))
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                print(f"[{index}] {prompts[index]!r}\n    -> {text!r}")
            out.flush()
            generated_tokens += int(result.lengths.sum())
        elapsed = time.perf_counter() - start
        metrics.write(done, dict(generated_tokens=generated_tokens, tokens_per_s=generated_tokens / elapsed))
    return output_path
