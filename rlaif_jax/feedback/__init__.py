"""AI feedback (RLAIF, Lee et al. 2023): choice probabilities of a language model (`choice.py`), the labeling prompts
(`templates.py`), the position-debiased pairwise labeler with optional chain of thought (`labeler.py`) and the
direct-RLAIF 1-10 score reward (`d_rlaif.py`)."""

from rlaif_jax.feedback.choice import choice_probabilities

__all__ = ["choice_probabilities"]
