"""The table of results/: the paper's runs with the CPU-budget config
``experiments/configs/dear_cpu.py`` (5,000 steps).

The order is for a machine that builds the table over several sittings:
seed by seed, then algorithm by algorithm (cheapest first), then model by
model, so that finished work always holds whole comparisons. Overrides per
run are part of the sweep: no TensorBoard (it loads TensorFlow), and
``nar_lt`` scores its test set (up to 5N steps per graph) only at the end.
"""

import importlib.util
import pathlib

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location('dear_paper_sweep',
                                               _HERE / 'dear_paper.py')
_paper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_paper)

CONFIG = _HERE.parents[1] / 'experiments' / 'configs' / 'dear_cpu.py'
ALGORITHMS = ('bfs', 'bellman_ford', 'dag_shortest_paths', 'floyd_warshall',
              'mst_prim', 'dfs', 'strongly_connected_components', 'minimum',
              'binary_search', 'insertion_sort')
# Per-model overrides of the config.
MODEL_OVERRIDES = {'nar_lt': {'config.test_every': 0}}


def get_sweep():
  if sorted(ALGORITHMS) != sorted(_paper.ALGORITHMS):
    raise ValueError('dear_cpu must run the algorithms of dear_paper')
  return [dict(config=str(CONFIG), algorithm=algorithm, model=model,
               seed=seed, **{'config.tensorboard': False},
               **MODEL_OVERRIDES.get(model, {}))
          for seed in _paper.SEEDS for algorithm in ALGORITHMS
          for model in _paper.MODELS]
