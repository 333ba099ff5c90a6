"""rlaif_jax: aligning language models with human and AI feedback, in JAX."""

__version__ = "0.1.0"
