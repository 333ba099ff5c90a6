"""Loss math, one file per method family: pure functions on log-probs, rewards and values, plus thin adapters
that apply a model and return `(loss_sum, metrics)` for `rlaif_jax.train.step.make_train_step`."""
