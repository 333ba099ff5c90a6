"""K sampled responses per prompt from one policy, and the response pairs to label (rlaif_jax/pipelines/samples.py).

    python -m rlaif_jax.main --config=configs/samples.py:tiny --workdir=/tmp/samples_tiny      # random tiny model, toy
    python -m rlaif_jax.main --config=configs/samples.py:smollm2 --workdir=/tmp/samples_sent   # SmolLM2, reviews

Writes WORKDIR/samples.jsonl, pairs.jsonl (gold-labelled when `gold_reward` is set) and samples.json.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (random-init model, toy prompts) or 'smollm2' (SmolLM2-135M-Instruct, sentiment prompts)."""
    if arg not in ("tiny", "smollm2"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny' or 'smollm2'")
    tiny = arg == "tiny"
    config = ml_collections.ConfigDict()
    config.job = "samples"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # sampling rng = fold_in(key(seed), sampler call)
    config.model = config_defaults.model(arg)
    config.model.scan_layers = False  # inference only: per-layer weights decode faster on CPU
    config.mesh = config_defaults.mesh()
    config.prompts = config_defaults.prompts("toy" if tiny else "sentiment")  # prompt source (data/prompts.py)
    config.split = "train"  # 'train' or 'held_out' prompts of the source
    config.num_prompts = 256 if tiny else 64  # prompts (cycling through the split); 0 = the split once
    config.samples_per_prompt = 2  # K responses per prompt (pairs use responses 0 and 1)
    config.temperature = 1.0  # sampling temperature
    config.max_prompt_length = 16 if tiny else 64  # longest prompt allowed, in tokens
    config.max_new_tokens = 8 if tiny else 48  # response length cap
    config.use_chat_template = not tiny  # prompts as a chat user turn
    config.batch_size = 256 if tiny else 16  # prompts per sampler call
    config.gold_reward = "toy" if tiny else "sentiment"  # labels the pairs ('' = none): 'toy' or 'sentiment'
    return config
