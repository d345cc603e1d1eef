"""DEAR against its NAR baseline on the paper's 10 algorithms, 3 seeds."""

ALGORITHMS = ('bellman_ford', 'floyd_warshall', 'dag_shortest_paths',
              'mst_prim', 'bfs', 'dfs', 'strongly_connected_components',
              'binary_search', 'minimum', 'insertion_sort')


def get_sweep():
  return [
      dict(algorithm=algorithm, model=model, seed=seed, hidden_size=128,
           batch_size=32, learning_rate=3e-4, test_sizes='64,128')
      for algorithm in ALGORITHMS
      for model in ('dear', 'nar')
      for seed in (0, 1, 2)
  ]
