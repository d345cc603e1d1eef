"""Tiny config for tests: small graphs, few steps, hidden 16, batch 4."""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.hidden_size = 16
  config.batch_size = 4
  config.train_steps = 4
  config.train_sizes = (8,)
  config.train_samples_per_size = 16
  config.val_size = 8
  config.val_samples = 8
  config.test_sizes = (12,)
  config.test_samples = 8
  config.eval_batch_size = 8
  config.log_every = 1
  config.eval_every = 2
  config.checkpoint_every = 2
  config.deq.max_iter = 10
  config.deq.eval_max_iter = 20
  # The tests share one session-wide cache (conftest.py).
  config.compilation_cache_dir = ''
  return config
