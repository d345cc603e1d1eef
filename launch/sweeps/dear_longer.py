"""DEAR at three times the table's budget: 15,000 steps instead of 5,000.

The table (``launch/sweeps/dear_cpu.py``) stops every run at 5,000 steps,
and most DEAR runs on the algorithms where DEAR trails NAR picked their
checkpoint at or next to step 5,000, so the gap may be one of budget. This
sweep trains the table's DEAR run again (``experiments/configs/dear_cpu.py``
unchanged but for ``train_steps``) on those algorithms, tagged ``steps15k``
so ``experiments.report`` gives it its own row (``dear:steps15k``). A DEAR
step costs less than a NAR step (no ground-truth unroll), so on
strongly_connected_components 15,000 DEAR steps still cost a fraction of
NAR's 5,000 (``train s`` in ``results/dear_cpu/table.md``).

Narrow it with ``--only=algorithm=...`` and ``--only=seed=...``; the order
is seed by seed, then algorithm by algorithm.
"""

import importlib.util
import pathlib

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location('dear_cpu_sweep',
                                               _HERE / 'dear_cpu.py')
_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_table)

TRAIN_STEPS = 15000
TAG = 'steps15k'
SEEDS = (0, 1, 2)
# Where DEAR trails NAR at 5,000 steps by more than the seed spread and
# picked a checkpoint at step 4,750 or later on at least two seeds.
ALGORITHMS = ('strongly_connected_components', 'mst_prim',
              'dag_shortest_paths', 'bellman_ford')


def get_sweep():
  unknown = set(ALGORITHMS) - set(_table.ALGORITHMS)
  if unknown:
    raise ValueError(f'dear_longer: not in the table: {sorted(unknown)}')
  return [dict(config=str(_table.CONFIG), algorithm=algorithm, model='dear',
               seed=seed, name=f'{algorithm}-dear-{TAG}-s{seed}',
               **{'config.tag': TAG, 'config.train_steps': TRAIN_STEPS,
                  'config.tensorboard': False})
          for seed in SEEDS for algorithm in ALGORITHMS]
