"""Drop-in processors for an unchanged CLRS ``BaselineModel``.

:func:`get_processor_factory` is the counterpart of
``clrs.get_processor_factory``: it returns a callable ``out_size -> Processor``
that ``clrs.models.BaselineModel(..., processor_factory=...)`` accepts.

* ``deq_mpnn`` / ``deq_triplet_mpnn``: DEAR. The processor returns the
  equilibrium of one cell step; feed it one-shot data
  (:func:`one_shot_features` / :func:`one_shot_feedback`) so that CLRS calls it
  exactly once per sample and nothing depends on the true number of steps.
* ``mpnn`` / ``triplet_mpnn``: the same Flax cell applied once per CLRS step,
  i.e. run for the ground-truth number of steps (the NAR baseline).

CLRS passes no train/eval flag to a processor, so a factory is built for
training (training iteration cap, Jacobian regulariser) and
:meth:`ProcessorFactory.for_evaluation` gives the evaluation twin (larger cap,
no regulariser; noise only if ``noise_in_eval``) with identical parameter
names: copy ``params`` from the training model into a model built from it.

Only this module knows Haiku: the Flax modules are lifted into the Haiku
transform with ``hk.experimental.flax.lift``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import clrs
import haiku as hk
import jax
import jax.numpy as jnp

from deq_clrs import cells as cells_lib
from deq_clrs import deq as deq_lib
from deq_clrs import options as options_lib
from deq_clrs.stats import SolverStatsLog

# Re-exported: the option tables and defaults live in the CLRS-free core.
PROCESSOR_KINDS = options_lib.PROCESSOR_KINDS
option_defaults = options_lib.option_defaults


class NotOneShotError(RuntimeError):
  """An equilibrium processor was run once per step of the algorithm."""


NOT_ONE_SHOT_MESSAGE = (
    'an equilibrium processor (deq_*) was run for a second step of the same '
    'samples: CLRS runs the processor once per hint time step, so the model '
    'would be given the true number of algorithm steps. Feed one-shot data: '
    'model.feedback(rng, deq_clrs.one_shot_feedback(feedback)) and '
    'model.predict(rng, deq_clrs.one_shot_features(features))')


def _not_one_shot(unused_carry) -> None:
  raise NotOneShotError(NOT_ONE_SHOT_MESSAGE)


class _PointerMaskedProcessor(clrs.processors.Processor):
  """A CLRS processor whose ``cell_config.mask_pointers`` turns on CLRS's
  masking of pointer logits to the graph's edges (its ``inf_bias`` and
  ``inf_bias_edge``, which its decoders read from the processor)."""

  _mask_pointers: bool = False

  @property
  def inf_bias(self) -> bool:
    """CLRS's switch for masking node-pointer logits to the graph's edges."""
    return self._mask_pointers

  @property
  def inf_bias_edge(self) -> bool:
    """The same for edge-pointer logits."""
    return self._mask_pointers


class DEQProcessor(_PointerMaskedProcessor):
  """CLRS processor whose output is the equilibrium of a Flax cell.

  It ignores the incoming ``hidden`` (the solve starts from H(0) = 0) and
  returns ``(H*, None)``.

  CLRS's ``Net`` builds a new processor for each application of the
  network, calls it once for the first step and once more to trace the
  scan over the remaining steps; with one-shot data that scan has length 0
  and never runs. A call after the first (outside ``init``) therefore gets
  a host callback that raises :class:`NotOneShotError` if it ever runs, i.e.
  if the data was not one-shot: the first ``feedback`` or ``predict`` on
  such data fails with that message (wrapped by JAX in a
  ``JaxRuntimeError``).
  """

  def __init__(self, out_size: int, cell_config: cells_lib.CellConfig,
               config: deq_lib.DEQConfig, training: bool,
               stats_log: SolverStatsLog | None = None,
               stats_in_state: bool = False, name: str = 'deq'):
    super().__init__(name=name)
    self._module = deq_lib.EquilibriumModule(
        cell_config=cell_config, out_size=out_size, config=config,
        training=training, parent=None)
    self._stats_log = stats_log
    self._stats_in_state = stats_in_state
    self._calls = 0
    self._mask_pointers = cell_config.mask_pointers

  def __call__(self, node_fts, edge_fts, graph_fts, adj_mat, hidden,
               **unused_kwargs):
    self._calls += 1
    if self._calls > 1 and not hk.running_init():
      # The operand comes from the scan's carry: a callback without one is
      # loop-invariant, and JAX may hoist it out of the scan under AD.
      jax.debug.callback(_not_one_shot, jnp.sum(hidden))
    del hidden  # The equilibrium does not depend on an initial state.
    layer = hk.experimental.flax.lift(self._module, name='equilibrium')
    h_star, stats, samples = layer(node_fts, edge_fts, graph_fts, adj_mat,
                                   rngs={'noise': hk.next_rng_key()})
    if self._stats_log is not None and not hk.running_init():
      jax.debug.callback(self._stats_log.record, stats)
    if self._stats_in_state:
      # No host callback: a program with one is never written to JAX's
      # persistent compilation cache.
      hk.set_state(SOLVER_STATS_STATE, stats.solver)
    if samples is not None:
      # For the alignment regulariser (a network under
      # hk.transform_with_state): see DEQ_STATE_SCOPE.
      hk.set_state('samples', samples.states)
      hk.set_state('samples_valid', samples.valid)
      hk.set_state('output', h_star)
    return h_star, None


# Haiku state a training DEQProcessor with trajectory samples writes (under
# its module name): 'samples' [B, S, N, D] and 'samples_valid' [B, S]
# (deq.TrajectorySamples) and 'output' [B, N, D] (H*); one built with
# stats_in_state writes SOLVER_STATS_STATE (solvers.SolverStats, fields
# [B]); a RolloutProcessor writes 'states' [B, T, N, D].
DEQ_STATE_SCOPE = 'deq_clrs_processor'
SOLVER_STATS_STATE = 'solver_stats'
# Where each processor's cell parameters live, below the network's name.
CELL_PARAMS_SCOPE = 'cell_clrs_processor/step'
DEQ_PARAMS_SCOPE = 'deq_clrs_processor/equilibrium/cell'


def cell_params_as_equilibrium(params: dict[str, Any]) -> dict[str, Any]:
  """A ``CellProcessor`` network's parameters renamed for the equilibrium
  (or rollout) processor of the same cell: the encoders and decoders keep
  their names, the cell moves from ``CELL_PARAMS_SCOPE`` to
  ``DEQ_PARAMS_SCOPE``."""
  return {name.replace(f'/{CELL_PARAMS_SCOPE}/', f'/{DEQ_PARAMS_SCOPE}/'):
          value for name, value in params.items()}


class RolloutProcessor(_PointerMaskedProcessor):
  """Runs a cell ``steps`` times from H(0) = 0 within one call: a NAR
  processor's whole trajectory on one-shot data.

  It has an equilibrium processor's module names (parameters from a
  ``CellProcessor`` network go through :func:`cell_params_as_equilibrium`),
  writes the states after every step into the Haiku state ``'states'``
  ([B, T, N, D]; the network must be under ``hk.transform_with_state``) and
  returns the last one.
  """

  def __init__(self, out_size: int, cell_config: cells_lib.CellConfig,
               steps: int, name: str = 'deq'):
    super().__init__(name=name)
    self._module = deq_lib.RolloutModule(
        cell_config=cell_config, out_size=out_size, steps=steps, parent=None)
    self._mask_pointers = cell_config.mask_pointers

  def __call__(self, node_fts, edge_fts, graph_fts, adj_mat, hidden,
               **unused_kwargs):
    del hidden
    layer = hk.experimental.flax.lift(self._module, name='equilibrium')
    states = layer(node_fts, edge_fts, graph_fts, adj_mat)
    hk.set_state('states', states)
    return states[:, -1], None


@dataclasses.dataclass(frozen=True)
class RolloutFactory:
  """``out_size -> RolloutProcessor`` for a cell run ``steps`` times."""
  cell: cells_lib.CellConfig
  steps: int

  def __call__(self, out_size: int) -> RolloutProcessor:
    return RolloutProcessor(out_size, self.cell, self.steps)


class CellProcessor(_PointerMaskedProcessor):
  """CLRS processor that applies a Flax cell once per call (NAR baseline)."""

  def __init__(self, out_size: int, cell_config: cells_lib.CellConfig,
               name: str = 'cell'):
    super().__init__(name=name)
    self._cell = cell_config.build(out_size)
    self._mask_pointers = cell_config.mask_pointers

  def __call__(self, node_fts, edge_fts, graph_fts, adj_mat, hidden,
               **unused_kwargs):
    step = hk.experimental.flax.lift(self._cell, name='step')
    return step(node_fts, edge_fts, graph_fts, adj_mat, hidden), None


@dataclasses.dataclass(frozen=True)
class ProcessorFactory:
  """``out_size -> Processor``, for ``BaselineModel(processor_factory=...)``.

  Attributes:
    kind: a key of :data:`PROCESSOR_KINDS`.
    cell: the cell settings.
    deq: the equilibrium settings (unused by non-equilibrium kinds).
    evaluation: build evaluation-mode processors (evaluation cap).
    stats_log: where equilibrium processors send their solver stats (a
      host callback).
    stats_in_state: equilibrium processors write their solver stats into
      the Haiku state instead (:data:`SOLVER_STATS_STATE`; the network must
      be under ``hk.transform_with_state``), so the compiled program has no
      host callback and can be stored in JAX's persistent cache.
  """
  kind: str
  cell: cells_lib.CellConfig
  deq: deq_lib.DEQConfig
  evaluation: bool = False
  stats_log: SolverStatsLog | None = dataclasses.field(default=None,
                                                       compare=False)
  stats_in_state: bool = False

  @property
  def is_equilibrium(self) -> bool:
    return PROCESSOR_KINDS[self.kind][1]

  def __call__(self, out_size: int) -> clrs.processors.Processor:
    if self.is_equilibrium:
      return DEQProcessor(out_size, self.cell, self.deq,
                          training=not self.evaluation,
                          stats_log=self.stats_log,
                          stats_in_state=self.stats_in_state)
    return CellProcessor(out_size, self.cell)

  def for_evaluation(self, stats_log: SolverStatsLog | None = None
                     ) -> ProcessorFactory:
    """The evaluation twin: same parameter names, evaluation solver budget."""
    return dataclasses.replace(self, evaluation=True,
                               stats_log=stats_log or self.stats_log)


def get_processor_factory(kind: str, *,
                          stats_log: SolverStatsLog | None = None,
                          evaluation: bool = False,
                          **options: Any) -> ProcessorFactory:
  """Builds a processor factory for ``clrs.models.BaselineModel``.

  Args:
    kind: ``'deq_mpnn'`` (DEAR), ``'deq_triplet_mpnn'``, ``'mpnn'`` or
      ``'triplet_mpnn'``.
    stats_log: optional :class:`SolverStatsLog` receiving solver statistics.
    evaluation: build the evaluation variant directly.
    **options: cell options (``mid_size``, ``aggregation``, ``msg_mlp``,
      ``layer_norm``, ``gated``, ``gate_bias``, ``cayley``,
      ``nb_triplet_fts``; see :class:`deq_clrs.cells.CellConfig`) and, for
      equilibrium kinds, solver options (``solver`` =
      ``'anderson'``/``'fixed_point'``, ``max_iter``, ``eval_max_iter``,
      ``rel_tol``, ``abs_tol``, ``history_size``, ``beta``, ``ridge``),
      backward options (``backward`` =
      ``'implicit'``/``'phantom'``/``'unrolled'``, ``linear_solver``,
      ``linear_tol``, ``linear_max_iter``, ``phantom_steps``,
      ``phantom_damping``, ``phantom_in_eval``, ``unroll_steps``) and
      ``noise_std``, ``noise_per_call``, ``noise_in_eval``,
      ``jac_reg_weight``, ``jac_reg_samples``.

  Returns:
    A :class:`ProcessorFactory`.

  Raises:
    ValueError: unknown kind, unknown option, an equilibrium option given to
      a non-equilibrium kind, or an invalid value.
  """
  cell, deq = options_lib.processor_configs(kind, **options)
  return ProcessorFactory(kind=kind, cell=cell, deq=deq,
                          evaluation=evaluation, stats_log=stats_log)
