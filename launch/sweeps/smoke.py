"""A tiny sweep for checking a cluster set-up (and for the tests)."""


def get_sweep():
  return [
      dict(algorithm='bfs', model=model, seed=0, train_steps=4,
           hidden_size=8, batch_size=4, test_sizes=16)
      for model in ('dear', 'nar')
  ]
