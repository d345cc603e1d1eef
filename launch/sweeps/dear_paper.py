"""The paper's table: DEAR, NAR and NAR with learned termination on the 10
DEAR algorithms, 3 seeds, with the paper's protocol
(``experiments/configs/dear_paper.py``; a GPU or TPU sweep)."""

import pathlib

ALGORITHMS = ('bellman_ford', 'floyd_warshall', 'dag_shortest_paths',
              'mst_prim', 'bfs', 'dfs', 'strongly_connected_components',
              'binary_search', 'minimum', 'insertion_sort')
MODELS = ('dear', 'nar', 'nar_lt')
SEEDS = (0, 1, 2)
CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'experiments' / (
    'configs') / 'dear_paper.py'


def get_sweep(config=CONFIG):
  return [dict(config=str(config), algorithm=algorithm, model=model,
               seed=seed)
          for algorithm in ALGORITHMS for model in MODELS for seed in SEEDS]
