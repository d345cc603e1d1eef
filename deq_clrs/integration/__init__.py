"""The CLRS layer: processors for CLRS's ``BaselineModel`` and CLRS data forms.

Built on the CLRS-free core (:mod:`deq_clrs.solvers`, :mod:`deq_clrs.cells`,
:mod:`deq_clrs.deq`); imports clrs and haiku. Nothing here trains a model:
that is :mod:`deq_clrs.training`.

* :mod:`~deq_clrs.integration.processors`: the Haiku processors and the
  processor factory (its options and their defaults are defined
  in :mod:`deq_clrs.options`, which imports no CLRS).
* :mod:`~deq_clrs.integration.one_shot`: the one-shot data form.
* :mod:`~deq_clrs.integration.oracle_data`: CLRS graphs in and out of the
  exact oracles of :mod:`deq_clrs.oracles`.
"""

from deq_clrs.integration.one_shot import one_shot_features
from deq_clrs.integration.one_shot import one_shot_feedback
from deq_clrs.integration.processors import DEQ_STATE_SCOPE
from deq_clrs.integration.processors import PROCESSOR_KINDS
from deq_clrs.integration.processors import SOLVER_STATS_STATE
from deq_clrs.integration.processors import NotOneShotError
from deq_clrs.integration.processors import ProcessorFactory
from deq_clrs.integration.processors import RolloutFactory
from deq_clrs.integration.processors import cell_params_as_equilibrium
from deq_clrs.integration.processors import get_processor_factory
from deq_clrs.integration.processors import option_defaults

__all__ = [
    'DEQ_STATE_SCOPE',
    'PROCESSOR_KINDS',
    'SOLVER_STATS_STATE',
    'NotOneShotError',
    'ProcessorFactory',
    'RolloutFactory',
    'cell_params_as_equilibrium',
    'get_processor_factory',
    'one_shot_features',
    'one_shot_feedback',
    'option_defaults',
]
