"""The T5 encoder–decoder against transformers: logits, cached decoding, greedy generation, sequence log-probs,
export, sharded placement and bad input."""

import json
import re

import jax
import numpy as np
import pytest
import torch
import transformers

from rlaif_jax import models, sharding
from rlaif_jax.inference import seq2seq
from rlaif_jax.losses import seq2seq as seq2seq_losses
from rlaif_jax.models import t5

RNG = np.random.default_rng(3)
ENCODER_IDS = RNG.integers(2, 64, size=(3, 14)).astype(np.int32)
ENCODER_MASK = np.ones_like(ENCODER_IDS)
ENCODER_MASK[2, 9:] = 0  # a right-padded row
DECODER_IDS = np.concatenate([np.zeros((3, 1), np.int32), RNG.integers(2, 64, size=(3, 23)).astype(np.int32)], 1)

VARIANTS = {
    "v1.1_gated_gelu": dict(),
    "v1.0_relu_scaled_head": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "deeper_decoder": dict(num_decoder_layers=3),
}


def _hf_logits(model, decoder_ids=DECODER_IDS):
    with torch.no_grad():
        return model(
            input_ids=torch.as_tensor(ENCODER_IDS, dtype=torch.long),
            attention_mask=torch.as_tensor(ENCODER_MASK),
            decoder_input_ids=torch.as_tensor(decoder_ids, dtype=torch.long),
        ).logits.numpy()


def _ours(lm, decoder_ids=DECODER_IDS):
    return np.asarray(lm.module.apply({"params": lm.params}, ENCODER_IDS, decoder_ids, ENCODER_MASK))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_logits_match_transformers(variant, tiny_hf_t5, record_diff):
    directory, hf_model = tiny_hf_t5(**VARIANTS[variant])
    lm = models.load(directory)
    assert isinstance(lm.module, t5.EncoderDecoder)
    theirs = _hf_logits(hf_model)
    diff = record_diff(f"T5 {variant} logits max|ours - hf|", np.abs(_ours(lm) - theirs).max(), 1e-4)
    assert diff <= 1e-4 and np.abs(theirs).max() > 1.0


def test_cached_decoding_equals_the_full_pass(tiny_hf_t5):
    lm = models.load(tiny_hf_t5()[0])
    module, variables = lm.module, {"params": lm.params}
    encoded = module.apply(variables, ENCODER_IDS, ENCODER_MASK, method=module.encode)
    cache = module.apply(variables, encoded, DECODER_IDS.shape[1], method=module.start_cache)
    steps = []
    for t in range(0, DECODER_IDS.shape[1], 4):  # chunks of 4, then one token at a time is the sampler's case
        logits, cache = module.apply(
            variables, DECODER_IDS[:, t : t + 4], cache, ENCODER_MASK, method=module.decode_step
        )
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), _ours(lm), atol=1e-5)


def test_greedy_generation_equals_transformers_for_32_tokens(tiny_hf_t5):
    directory, hf_model = tiny_hf_t5(seed=1)
    lm = models.load(directory)
    out = seq2seq.generate(lm, ENCODER_IDS, ENCODER_MASK, max_new_tokens=32)
    with torch.no_grad():
        theirs = hf_model.generate(
            input_ids=torch.as_tensor(ENCODER_IDS, dtype=torch.long),
            attention_mask=torch.as_tensor(ENCODER_MASK),
            max_new_tokens=32,
            do_sample=False,
            num_beams=1,
        ).numpy()[:, 1:]  # HF's output starts with decoder_start_token_id
    assert len(set(out.tokens[:, 0].tolist()) | set(out.tokens[:, 5].tolist())) > 1  # not a degenerate decode
    for row, length, expected in zip(out.tokens, out.lengths, theirs):
        np.testing.assert_array_equal(row[:length], expected[:length])
    # The sampler's log-probs are the model's at the chosen tokens.
    logps, _ = seq2seq_losses.sequence_logprobs(
        lm.module, lm.params, ENCODER_IDS, ENCODER_MASK, out.tokens, np.arange(32)[None] < out.lengths[:, None]
    )
    np.testing.assert_allclose(np.asarray(logps), out.logprobs.sum(axis=1), rtol=1e-5, atol=1e-4)


def test_decoding_stops_once_every_row_has_ended(tiny_hf_t5):
    directory, _ = tiny_hf_t5(seed=2)
    lm = models.load(directory)
    eos_everywhere = lm.replace(config=lm.config.replace(eos_token_ids=tuple(range(64))))
    module = t5.EncoderDecoder(eos_everywhere.config)
    *_, steps = seq2seq._generate(
        module,
        lm.params,
        ENCODER_IDS,
        ENCODER_MASK,
        jax.random.key(0),
        np.float32(1.0),
        max_new_tokens=16,
        greedy=True,
        top_k=0,
    )
    assert int(steps) == 1  # every token is an EOS: one step, not 16


def test_sequence_logprobs_match_the_transformers_loss(tiny_hf_t5):
    directory, hf_model = tiny_hf_t5()
    lm = models.load(directory)
    targets = DECODER_IDS[:, 1:]
    target_mask = np.ones_like(targets)
    target_mask[1, 15:] = 0
    logps, counts = seq2seq_losses.sequence_logprobs(
        lm.module, lm.params, ENCODER_IDS, ENCODER_MASK, targets, target_mask
    )
    labels = np.where(target_mask == 1, targets, -100)
    with torch.no_grad():
        logits = hf_model(
            input_ids=torch.as_tensor(ENCODER_IDS, dtype=torch.long),
            attention_mask=torch.as_tensor(ENCODER_MASK),
            labels=torch.as_tensor(labels, dtype=torch.long),
        ).logits
    token_logps = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(targets, dtype=torch.long)[..., None])[
        ..., 0
    ]
    expected = (token_logps.numpy() * target_mask).sum(axis=1)
    np.testing.assert_allclose(np.asarray(logps), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(counts), target_mask.sum(axis=1))


def test_save_hf_round_trip_is_read_by_transformers(tiny_hf_t5, tmp_path):
    directory, hf_model = tiny_hf_t5(**VARIANTS["v1.0_relu_scaled_head"])
    models.save_hf(models.load(directory), str(tmp_path))
    again = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path)).float().eval()
    original = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    for key, value in again.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), original[key], err_msg=key)
    np.testing.assert_array_equal(_hf_logits(again), _hf_logits(hf_model))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "t5"


def test_loads_sharded_on_a_mesh_with_the_same_logits(tiny_hf_t5):
    directory, _ = tiny_hf_t5()
    mesh = sharding.make_mesh(1, 2, 2, devices=jax.devices()[:4])
    lm = models.load(directory, mesh=mesh)
    q = lm.params["encoder_0"]["attention"]["q"]  # [d_model, heads, d_kv]: d_model over fsdp, heads over tensor
    assert tuple(q.sharding.spec)[:2] == ("fsdp", "tensor")
    np.testing.assert_allclose(_ours(lm), _ours(models.load(directory)), atol=1e-5)


def test_a_missing_tensor_and_bad_ids_are_named(tiny_hf_t5, tmp_path):
    from safetensors.numpy import load_file, save_file

    directory, _ = tiny_hf_t5()
    state = load_file(f"{directory}/model.safetensors")
    del state["decoder.block.1.layer.2.DenseReluDense.wi_1.weight"]
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text(open(f"{directory}/config.json").read())
    with pytest.raises(KeyError, match=re.escape("decoder.block.1.layer.2.DenseReluDense.wi_1.weight")):
        models.load(str(tmp_path))
    lm = models.load(directory)
    with pytest.raises(ValueError, match="integer array"):
        lm.module.apply({"params": lm.params}, ENCODER_IDS.astype(np.float32), DECODER_IDS)
    with pytest.raises(ValueError, match="feed_forward_proj='swish'"):
        t5.T5Config(feed_forward_proj="swish")


def test_lora_on_a_t5_is_refused_not_ignored(tiny_hf_t5):
    from rlaif_jax import config_defaults
    from rlaif_jax.models.setup import build_model

    with pytest.raises(ValueError, match="not the T5 encoder-decoder"):
        models.load(tiny_hf_t5()[0], lora=dict(rank=4))
    block = config_defaults.model("tiny")
    block.name, block.tiny_t5 = "tiny_t5", dict(config_defaults.TINY_T5)
    block.lora.rank = 4
    with pytest.raises(ValueError, match="not T5"):
        build_model(block, None, None)
