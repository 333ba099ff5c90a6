"""Answer prompts with a model: the smallest end-to-end job (load -> tokenise -> sample -> write).

    python -m rlaif_jax.main --config=configs/generate.py:smollm2 --workdir=/tmp/generate
    python -m rlaif_jax.main --config=configs/generate.py:tiny --workdir=/tmp/generate_tiny \
        --config.prompts_file=prompts.txt --config.sampling.temperature=0.7

Writes WORKDIR/generations.jsonl ({"prompt", "completion", "num_tokens"} per line), config.json and metrics.jsonl
(tokens/s). SmolLM2 greedy answers "What is the capital of France?" with "The capital of France is Paris."
Running the same command again answers only the prompts not yet in generations.jsonl.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "smollm2") -> ml_collections.ConfigDict:
    """arg: 'tiny' (random-init model, seconds) or 'smollm2' (SmolLM2-135M-Instruct on CPU)."""
    if arg == "paper":
        raise ValueError("generate.py has no 'paper' size: the papers' policies (PaLM 2, GPT-3) are not public")
    config = ml_collections.ConfigDict()
    config.job = "generate"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # prompt i samples from fold_in(key(seed), i)
    config.model = config_defaults.model(arg)
    config.model.scan_layers = False  # inference only: per-layer weights decode faster on CPU
    config.mesh = config_defaults.mesh()
    config.prompts = [  # answered when prompts_file is empty
        "What is the capital of France?",
        "Give me three tips for writing a clear summary.",
        "Write a one-sentence story about a robot learning to paint.",
    ]
    config.prompts_file = ""  # a .txt (one prompt per line) or .jsonl (a "prompt" field per row)
    config.use_chat_template = True  # wrap each prompt as a user turn of the tokenizer's chat template
    config.batch_size = 8  # prompts per sampler call
    config.sampling = ml_collections.ConfigDict(
        dict(
            max_new_tokens=64 if arg == "smollm2" else 16,  # tokens generated per prompt at most
            temperature=0.0,  # 0 = greedy
            top_k=0,  # 0 = off
            top_p=1.0,  # 1.0 = off
            num_samples=1,  # completions per prompt
        )
    )
    return config
