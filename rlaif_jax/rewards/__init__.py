"""Reward functions for RL: gold judges (toy task, sentiment, BLEU/chrF), reward models, AI-feedback scores.

A reward function maps `(prompts: list[str], completions: list[str]) -> np.ndarray [n]` (float32).
"""
