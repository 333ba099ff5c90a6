"""Installs rlaif_jax. `pip install -e .[test]` adds the reference stack the tests compare against."""

import setuptools

setuptools.setup(
    name="rlaif_jax",
    version="0.1.0",
    description="Aligning language models with human and AI feedback in JAX/Flax.",
    packages=setuptools.find_packages(include=["rlaif_jax", "rlaif_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7",
        "flax>=0.11",
        "optax",
        "orbax-checkpoint",
        "chex",
        "ml-collections",
        "transformers>=4.50",
        "tokenizers",
        "datasets",
        "safetensors",
        "gguf>=0.10",
        "numpy",
        "tqdm",
        "tensorboardX",
        "absl-py",
        "vaderSentiment",  # gold judge of the sentiment task (ships its lexicon)
        "sacrebleu",  # BLEU / chrF rewards (ReST)
        "matplotlib",  # evaluation report plots (Agg backend, PNG)
    ],
    extras_require={
        # torch is only the numerical reference in tests (pip install torch==2.13.0 takes the local CPU build).
        # trl: the DPO/IPO/hinge/cDPO parity test calls DPOTrainer._compute_loss (a private method: pinned).
        "test": ["pytest", "torch==2.13.0", "accelerate", "ruff", "trl==1.16.0"],
    },
)
