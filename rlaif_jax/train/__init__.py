"""The shared train step, optimizers and the training loops built on them."""
