"""Slow end-to-end check that DEAR learns (CI runs it with --runslow)."""

import pytest

from deq_clrs import training
from experiments.configs import test as test_config


@pytest.mark.slow
def test_dear_on_bfs_beats_its_untrained_self_at_64_nodes(tmp_path):
  config = test_config.get_config()
  config.data_dir = str(tmp_path / 'data')
  config.algorithm, config.model = 'bfs', 'dear'
  config.hidden_size, config.batch_size = 32, 16
  config.learning_rate = 3e-3
  config.train_sizes, config.train_samples_per_size = (8, 12), 64
  config.val_size, config.val_samples = 12, 16
  config.test_sizes, config.test_samples, config.eval_batch_size = (64,), 16, 16
  config.eval_every = config.checkpoint_every = 50
  config.log_every = 25
  config.deq.max_iter, config.deq.eval_max_iter = 20, 80

  config.test_every = 150  # Test at step 0 (untrained) and at the end.
  config.train_steps = 150
  trained = training.train_and_evaluate(config, str(tmp_path / 'trained'))

  (untrained,) = [e for e in trained['history'] if e['step'] == 0]
  before = untrained['test_scores']['64']
  after = trained['test_scores']['64']['score']
  print(f'bfs at 64 nodes: untrained {before:.3f}, trained {after:.3f}')
  assert after > before + 0.3, (before, after)
  assert after > 0.6, after
  assert trained['solver']['64']['converged_fraction'] > 0.5
