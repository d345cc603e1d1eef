"""The CPU budget of results/: DEAR vs NAR on one core, a few minutes each.

Differences from DEAR's GPU protocol (latent 128, batch 32, lr 3e-4, sizes
8..16, thousands of steps): latent 64, batch 16, lr 1e-3, 200 steps, and
training sizes 8, 12 and 16 only (every distinct size costs one XLA
compilation, ~15-20 s on this CPU). Validation 16 nodes, test 64 nodes,
32 graphs each, as in CLRS-30.
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.hidden_size = 64
  config.batch_size = 16
  config.learning_rate = 1e-3
  config.train_steps = 200
  config.train_sizes = (8, 12, 16)
  config.train_samples_per_size = 128
  config.eval_batch_size = 16
  config.eval_every = 50
  config.checkpoint_every = 50
  return config
