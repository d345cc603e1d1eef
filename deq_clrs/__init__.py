"""deq_clrs: Deep Equilibrium Algorithmic Reasoning (DEAR) on DeepMind's CLRS.

The public entry points:

* :func:`get_processor_factory`: drop-in processors for
  ``clrs.models.BaselineModel`` (``deq_mpnn`` = DEAR, ``mpnn`` = the same cell
  run per step).
* :func:`one_shot_features` / :func:`one_shot_feedback`: the data form under
  which the equilibrium processor never sees the true number of steps.
* :mod:`deq_clrs.solvers`, :mod:`deq_clrs.cells`, :mod:`deq_clrs.deq`: the
  fixed-point solvers, the Flax cells and the equilibrium layer.
"""

from deq_clrs.clrs_adapter import PROCESSOR_KINDS
from deq_clrs.clrs_adapter import ProcessorFactory
from deq_clrs.clrs_adapter import SolverStatsLog
from deq_clrs.clrs_adapter import get_processor_factory
from deq_clrs.clrs_adapter import one_shot_features
from deq_clrs.clrs_adapter import one_shot_feedback
from deq_clrs.deq import DEQConfig
from deq_clrs.solvers import BackwardConfig
from deq_clrs.solvers import SolverConfig

__version__ = '0.1.0'

__all__ = [
    'BackwardConfig',
    'DEQConfig',
    'PROCESSOR_KINDS',
    'ProcessorFactory',
    'SolverConfig',
    'SolverStatsLog',
    'get_processor_factory',
    'one_shot_features',
    'one_shot_feedback',
]
