"""deq_clrs: Deep Equilibrium Algorithmic Reasoning (DEAR) on DeepMind's CLRS.

The package is a one-way stack; each layer imports only the ones above it:

* core (this folder's modules: :mod:`~deq_clrs.anderson`,
  :mod:`~deq_clrs.solvers`, :mod:`~deq_clrs.gradients`,
  :mod:`~deq_clrs.cells`, :mod:`~deq_clrs.deq`, :mod:`~deq_clrs.stats`,
  :mod:`~deq_clrs.oracles`, :mod:`~deq_clrs.options`): fixed-point
  solvers and their gradients, Flax cells, the equilibrium layer, the exact
  oracle cells and the processor options; jax, flax and jaxopt only.
  Importing it never imports clrs, haiku or TensorFlow.
* :mod:`deq_clrs.integration`: processors for CLRS's ``BaselineModel`` and
  the one-shot data form (clrs, haiku).
* :mod:`deq_clrs.training`: datasets, models, the training loop,
  checkpoints, data parallelism and benchmarks.

The drop-in entry points are reachable from here as before:
:func:`get_processor_factory` (``deq_mpnn`` = DEAR, ``mpnn`` = the same cell
run per step) and :func:`one_shot_features` / :func:`one_shot_feedback`.
They live in :mod:`deq_clrs.integration` and are imported on first use, so
that ``import deq_clrs.solvers`` stays free of clrs.
"""

import importlib
from typing import Any

from deq_clrs.deq import DEQConfig
from deq_clrs.solvers import BackwardConfig
from deq_clrs.solvers import SolverConfig
from deq_clrs.stats import SolverStatsLog

__version__ = '0.1.0'

# Names served lazily from the CLRS layer.
_INTEGRATION = ('PROCESSOR_KINDS', 'NotOneShotError', 'ProcessorFactory',
                'get_processor_factory', 'one_shot_features',
                'one_shot_feedback')

__all__ = [
    'BackwardConfig',
    'DEQConfig',
    'SolverConfig',
    'SolverStatsLog',
    *_INTEGRATION,
]


def __getattr__(name: str) -> Any:
  if name in _INTEGRATION:
    integration = importlib.import_module('deq_clrs.integration')
    return getattr(integration, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_INTEGRATION))
