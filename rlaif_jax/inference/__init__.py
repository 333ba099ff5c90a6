"""Inference-time policies built on the sampler: best-of-N reranking by a reward (`best_of_n.py`)."""
