"""The `sft` job: supervised fine-tuning with checkpoints, resumable by re-running the same command."""

from __future__ import annotations

import os

from rlaif_jax import models, sharding
from rlaif_jax import workdir as run_dir
from rlaif_jax.data import hf_datasets
from rlaif_jax.data.jsonl import read_jsonl
from rlaif_jax.data.sentiment import review_rows
from rlaif_jax.data.sft import TokenizedExamples, tokenize_prompt_response, tokenize_source_target
from rlaif_jax.data.toy import toy_graded_rows, toy_rows
from rlaif_jax.feedback.d_rlaif import score_demonstrations
from rlaif_jax.losses.sft import supervised_loss_fn
from rlaif_jax.models.setup import build_mesh, build_model
from rlaif_jax.models.t5 import EncoderDecoder
from rlaif_jax.train.loop import fit
from rlaif_jax.train.step import model_params


def _tokenize(rows, tokenizer, data_config, seq2seq: bool, **fields) -> TokenizedExamples:
    """Decoder-only: prompt + response in one row of `max_length`; encoder-decoder (`seq2seq`): the prompt and the
    response + EOS each within `max_length` tokens (`tokenize_source_target`)."""
    if seq2seq:
        return tokenize_source_target(
            rows,
            tokenizer,
            max_source_length=data_config.max_length,
            max_target_length=data_config.max_length,
            use_chat_template=data_config.use_chat_template,
            **fields,
        )
    return tokenize_prompt_response(
        rows, tokenizer, max_length=data_config.max_length, use_chat_template=data_config.use_chat_template, **fields
    )


def load_sft_examples(data_config, tokenizer, *, seq2seq: bool = False) -> TokenizedExamples:
    """`config.data.train_file` (JSONL with prompt/response columns), 'toy' (the toy letters task), 'toy_scores' (the
    toy task's d-RLAIF score prompt answered with gold grades: teaches a tiny judge), 'reviews' (the
    tiny sentiment task's demonstrations) or 'tldr' (CarperAI's TL;DR SFT split `config.data.split` from
    `config.data.dataset_path`: '' = the hub, or a local copy); `seq2seq`: as an encoder-decoder's arrays."""
    if data_config.train_file == "tldr":
        path = data_config.get("dataset_path", "") or hf_datasets.TLDR_SFT
        rows = hf_datasets.load_tldr_sft(path, data_config.get("split", "train"))
        return _tokenize(rows, tokenizer, data_config, seq2seq)
    if data_config.train_file == "toy":
        rows = toy_rows(data_config.toy_num_rows, seed=data_config.seed, noise=data_config.toy_noise)
    elif data_config.train_file == "toy_scores":  # a d-RLAIF judge for the toy task: its score prompt, gold grades
        rows = score_demonstrations("toy", toy_graded_rows(data_config.toy_num_rows, seed=data_config.seed))
    elif data_config.train_file == "reviews":
        rows = review_rows(data_config.toy_num_rows, seed=data_config.seed)
    else:
        rows = read_jsonl(data_config.train_file, (data_config.prompt_field, data_config.response_field))
    return _tokenize(
        rows,
        tokenizer,
        data_config,
        seq2seq,
        prompt_field=data_config.prompt_field,
        response_field=data_config.response_field,
    )


def run(config, workdir: str) -> dict:
    """Trains `config.model` on `config.data` for `config.train.num_steps`; returns the last logged metrics."""
    run_dir.write_config(config, workdir)
    mesh = build_mesh(config)
    rules = sharding.normalize_rules(config.mesh.rules)
    lm = build_model(config.model, mesh, rules, strict=config.mesh.get("strict", False))
    seq2seq = isinstance(lm.module, EncoderDecoder)
    examples = load_sft_examples(config.data, lm.tokenizer, seq2seq=seq2seq)
    state, last_metrics, finished = fit(
        lm=lm,
        loss_fn=supervised_loss_fn(lm.module),
        arrays=examples.arrays,
        config=config,
        workdir=workdir,
        num_steps=config.train.num_steps,
        mesh=mesh,
        rules=rules,
        desc="sft",
    )
    if config.export_hf and finished:
        models.save_hf(lm.replace(params=model_params(state)), os.path.join(workdir, "hf_model"))
    return last_metrics
