"""Evaluation: judge win rates, length control, harmless rate, self-preference, RM accuracy, reports and plots."""
