"""Training-side ablations of DEAR at the table's budget
(``experiments/configs/dear_cpu.py``, 5,000 steps), to find out why DEAR
trails NAR where it does.

Each variant changes one thing of the default DEAR run and is tagged, so
``experiments.report`` gives it its own row (``dear:<tag>``):

* ``implicit``: the implicit (IFT) gradient instead of the 1-step phantom
  gradient;
* ``no_jac``: no Jacobian regulariser;
* ``no_noise``: no noise in the fixed-point map;
* ``tol0.01``: relative tolerance 0.01 instead of 0.1 (training and test);
* ``cap80``: iteration caps 80 / 320 instead of 40 / 160;
* ``tol0.01_cap80``: both of the above, for algorithms whose solver runs
  into the cap of 40 once the tolerance is 0.01;
* ``align``: the alignment regulariser (weight 0.01) with the table's own
  ``nar`` run of the same algorithm and seed as the teacher, found under
  ``$TABLE_RUNS`` (default ``/work/runs/dear_cpu``, the table's root); run
  it after that ``nar`` run has finished.

Every variant runs on the table's three seeds, each ``align`` seed with the
``nar`` run of that seed as teacher. Narrow it with ``--only=algorithm=...``,
``--only=config.tag=...`` and ``--only=seed=...``; the order is algorithm by
algorithm, then seed.
"""

import importlib.util
import os
import pathlib

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location('dear_cpu_sweep',
                                               _HERE / 'dear_cpu.py')
_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_table)

SEEDS = (0, 1, 2)
_TOL_001 = {'config.deq.rel_tol': 0.01}
_CAP_80 = {'config.deq.max_iter': 80, 'config.deq.eval_max_iter': 320}
# tag -> config overrides.
VARIANTS = {
    'implicit': {'config.deq.backward': 'implicit'},
    'no_jac': {'config.deq.jac_reg_weight': 0.0},
    'no_noise': {'config.deq.noise_std': 0.0},
    'tol0.01': _TOL_001,
    'cap80': _CAP_80,
    'tol0.01_cap80': {**_TOL_001, **_CAP_80},
    'align': {'config.align.weight': 0.01},
}


def teacher(algorithm: str, seed: int) -> str:
  """The table's nar run of ``algorithm`` and ``seed``."""
  root = os.environ.get('TABLE_RUNS', '/work/runs/dear_cpu')
  return os.path.join(root, f'{algorithm}-nar-s{seed}')


def get_sweep():
  runs = []
  for algorithm in _table.ALGORITHMS:
    for seed in SEEDS:
      for tag, overrides in VARIANTS.items():
        run = dict(config=str(_table.CONFIG), algorithm=algorithm,
                   model='dear', seed=seed, **{'config.tag': tag},
                   name=f'{algorithm}-dear-{tag}-s{seed}',
                   **{'config.tensorboard': False}, **overrides)
        if tag == 'align':
          run['config.align.teacher'] = teacher(algorithm, seed)
        runs.append(run)
  return runs
