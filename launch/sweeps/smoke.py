"""A tiny sweep for checking a cluster set-up (and for the tests)."""


def get_sweep():
  return [
      dict(config='experiments/configs/test.py', algorithm='bfs', model=model,
           seed=0, train_steps=4)
      for model in ('dear', 'nar')
  ]
