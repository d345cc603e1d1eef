"""How well a backward mode's gradient agrees with the implicit gradient.

:func:`gradient_agreement` compares, on one DEAR cell's parameters, one
one-shot batch and one rng, the gradients of CLRS's loss computed by stock
``BaselineModel`` s (public ``compute_grad``) that differ only in their
equilibrium settings:

* ``reference``: the cell's options updated with :data:`REFERENCE_OPTIONS`
  (and any overrides): the implicit gradient at a fixed point solved to
  relative residual 1e-5;
* ``tested``: the cell's options as they are (default: DEAR's 1-step
  phantom gradient at relative tolerance 0.1, cap 40), so it differs from
  the reference both in the point (the loose fixed point) and in the
  backward pass;
* ``tested_at_reference_fixed_point``: the tested backward mode with the
  reference's forward solver, so only the backward pass differs;
* ``reference_check``: the reference with :data:`REFERENCE_CHECK_OPTIONS`;
  its cosine with the reference says whether the reference is well defined.

:data:`DETERMINISTIC_OPTIONS` (no noise, no Jacobian regulariser) are
forced on every model. A graph whose reference solve misses its tolerance
has no fixed point to differentiate at, and can be dropped from the batch
before any gradient is compared. Non-finite gradients are reported, not
raised.

The cell comes from :mod:`deq_clrs.measure.gradient_run` (trained briefly
or loaded from a run).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any
from typing import NamedTuple

import clrs
import jax
import numpy as np

from deq_clrs import deq as deq_lib
from deq_clrs import integration
from deq_clrs import solvers
from deq_clrs import stats as stats_lib
from deq_clrs.measure import baseline
from deq_clrs.training import data as data_lib

#: Forced on every model of a comparison, so that the loss is deterministic
#: and the same on both sides: no noise inside the fixed-point map and no
#: Jacobian regulariser (whose gradient is added to the task gradient).
DETERMINISTIC_OPTIONS = {'noise_std': 0.0, 'jac_reg_weight': 0.0}

#: The reference gradient: implicit differentiation at a fixed point
#: solved by plain iteration to relative residual 1e-5, with a tightly
#: solved adjoint system (GMRES). Plain iteration converges exactly where
#: the fixed point attracts, which is where the k-step phantom gradient
#: tends to the implicit one as k grows; it is slow on trained cells (their
#: slowest modes contract by 0.997 or more per step: 1000-6000 steps
#: here) but never breaks down, unlike float32 Anderson at such tolerances
#: (NaN residuals on some cells, measured).
REFERENCE_OPTIONS = {
    'backward': 'implicit', 'solver': 'fixed_point', 'rel_tol': 1e-5,
    'abs_tol': 0.0, 'max_iter': 10000, 'linear_solver': 'gmres',
    'linear_tol': 1e-6, 'linear_max_iter': 1000}

#: The reference recomputed with the adjoint system solved 100x tighter
#: (GMRES to 1e-8, up to 3000 matrix-vector products). Where I - J at the
#: fixed point is well conditioned the two agree (cosine 1.0000); where it
#: is near-singular (trained gated cells close some gates to ~1e-6, which
#: puts eigenvalues of J within ~1e-6 of 1) they do not, or the gradient
#: is not finite, and the reference, so every cosine against it, is not to
#: be trusted.
REFERENCE_CHECK_OPTIONS = {'linear_tol': 1e-8, 'linear_max_iter': 3000}

#: The reference is trusted if its gradient is finite and its cosine with
#: the check is at least this.
TRUSTED_CHECK_COSINE = 0.999

#: Factory options of the forward solve (``solver`` is the method).
SOLVER_OPTION_NAMES = ('solver',) + tuple(
    f.name for f in dataclasses.fields(solvers.SolverConfig)
    if f.name != 'method')


def processor_params(tree: dict[str, Any]) -> dict[str, Any]:
  """The processor's entries of a CLRS parameter (or gradient) dict.

  CLRS's Haiku paths name the processor module ``*_clrs_processor``, e.g.
  ``net/deq_clrs_processor/equilibrium/cell/msg_mlp``; encoders and
  decoders live under ``net/~_construct_encoders_decoders``.
  """
  return {k: v for k, v in tree.items() if 'clrs_processor' in k}


def _flat64(tree: Any) -> np.ndarray:
  leaves = jax.tree_util.tree_leaves(tree)
  return np.concatenate([np.ravel(np.asarray(x, np.float64))
                         for x in leaves])


def tree_norm64(tree: Any) -> float:
  """Euclidean norm of all leaves of a pytree together, in float64."""
  return float(np.linalg.norm(_flat64(tree)))


def cosine_similarity(a: Any, b: Any) -> float:
  """Cosine of the angle between two pytrees of one structure (float64).

  Returns nan if either is zero.

  Raises:
    ValueError: the pytrees differ in structure or leaf shapes.
  """
  if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
    raise ValueError('cosine_similarity needs pytrees of one structure')
  shapes = lambda t: [np.shape(x) for x in jax.tree_util.tree_leaves(t)]
  if shapes(a) != shapes(b):
    raise ValueError('cosine_similarity needs leaves of equal shapes')
  x, y = _flat64(a), _flat64(b)
  denom = np.linalg.norm(x) * np.linalg.norm(y)
  return float(x @ y / denom) if denom > 0 else float('nan')


class EquilibriumGradient(NamedTuple):
  """CLRS's loss on one batch of B graphs and its gradient.

  Attributes:
    loss: the training loss (scalar).
    grads: gradient w.r.t. every parameter, shaped like the parameters.
    solver: per-graph statistics of the forward solve (fields of shape
      [B]).
  """
  loss: float
  grads: dict[str, Any]
  solver: solvers.SolverStats


def summarize_solver(stats: solvers.SolverStats) -> dict[str, float]:
  """Means and maxima over graphs of per-graph solver statistics."""
  record = deq_lib.EquilibriumStats(solver=stats, jac_frobenius=None)
  return stats_lib.SolverStatsLog.summarize([record])


_GRADIENT_MODELS: collections.OrderedDict = collections.OrderedDict()
_GRADIENT_MODELS_MAX = 16


def _gradient_model(algorithm: str, hidden_dim: int, processor: str,
                    options: dict[str, Any], dummy: clrs.Feedback
                    ) -> tuple[clrs.models.BaselineModel,
                               stats_lib.SolverStatsLog]:
  """A cached ``(BaselineModel, SolverStatsLog)`` for these settings.

  Reusing the model reuses its jitted gradient (a new model compiles
  again, and programs with host callbacks skip JAX's persistent cache).
  CLRS's model depends on the data only through the spec, so one model
  serves every graph size and batch size (jit retraces per shape).
  """
  key = (algorithm, hidden_dim, processor, tuple(sorted(options.items())))
  if key in _GRADIENT_MODELS:
    _GRADIENT_MODELS.move_to_end(key)
    return _GRADIENT_MODELS[key]
  log = stats_lib.SolverStatsLog()
  factory = integration.get_processor_factory(processor, stats_log=log,
                                               **options)
  model = baseline.baseline_model(data_lib.algorithm_spec(algorithm), dummy,
                                  factory, hidden_dim)
  _GRADIENT_MODELS[key] = model, log
  while len(_GRADIENT_MODELS) > _GRADIENT_MODELS_MAX:
    _GRADIENT_MODELS.popitem(last=False)
  return model, log


def equilibrium_gradient(algorithm: str, params: dict[str, Any],
                         feedback: clrs.Feedback, *, hidden_dim: int,
                         options: dict[str, Any],
                         processor: str = 'deq_mpnn',
                         seed: int = 0) -> EquilibriumGradient:
  """The loss gradient of a ``BaselineModel`` with an equilibrium processor.

  Builds (or reuses) a training-mode model from
  ``get_processor_factory(processor, **options)`` on the algorithm's spec
  (``data.algorithm_spec``), sets its parameters to ``params`` and calls
  the public ``BaselineModel.compute_grad(PRNGKey(seed), feedback)``
  (unclipped).

  Args:
    algorithm: a CLRS algorithm.
    params: the model's parameters (CLRS's dict: Haiku path -> name ->
      array).
    feedback: a one-shot batch of B graphs of N nodes.
    hidden_dim: the model's latent width.
    options: processor factory options (cell, solver, backward, noise).
    processor: an equilibrium processor kind.
    seed: the rng of the loss (CLRS's Sinkhorn decoder draws Gumbel noise).

  Returns:
    An :class:`EquilibriumGradient`.
  """
  model, log = _gradient_model(algorithm, hidden_dim, processor, options,
                               feedback)
  log.drain()
  model.params = params
  loss, grads = model.compute_grad(jax.random.PRNGKey(seed), feedback)
  grads = jax.tree_util.tree_map(np.asarray, grads)
  # Under value_and_grad the host callback may fire more than once for the
  # one solve (identical records); the first is that solve.
  records = log.drain()
  return EquilibriumGradient(loss=float(loss), grads=grads,
                             solver=records[0].solver)


def backward_label(options: dict[str, Any]) -> str:
  """A short name of the backward mode of factory options, e.g.
  ``phantom(1)``, ``phantom(30, damping 0.5)``, ``implicit``."""
  defaults = solvers.BackwardConfig()
  mode = options.get('backward', defaults.mode)
  if mode == 'phantom':
    steps = options.get('phantom_steps', defaults.phantom_steps)
    damping = options.get('phantom_damping', defaults.phantom_damping)
    return (f'phantom({steps})' if damping == 1.0
            else f'phantom({steps}, damping {damping:g})')
  if mode == 'unrolled':
    return f'unrolled({options.get("unroll_steps", defaults.unroll_steps)})'
  return mode


def describe(g: EquilibriumGradient, options: dict[str, Any]
             ) -> dict[str, Any]:
  """A JSON-ready account of one gradient: its options, loss, norms (all
  parameters, the processor's), finiteness, solver summary and per-graph
  relative residuals ([B])."""
  flat = _flat64(g.grads)
  return {'options': options, 'loss': g.loss,
          'grad_norm': tree_norm64(g.grads),
          'processor_grad_norm': tree_norm64(processor_params(g.grads)),
          'finite': bool(np.all(np.isfinite(flat))),
          'solver': summarize_solver(g.solver),
          'rel_residuals': [float(r) for r in g.solver.rel_residual]}


def compared_options(factory_options: dict[str, Any] | None,
                     reference_options: dict[str, Any] | None
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
  """The tested and the reference model's factory options: the cell's
  ``factory_options``, and those with :data:`REFERENCE_OPTIONS` and
  ``reference_options`` over them; :data:`DETERMINISTIC_OPTIONS` on both."""
  tested = {**(factory_options or {}), **DETERMINISTIC_OPTIONS}
  reference = {**(factory_options or {}), **REFERENCE_OPTIONS,
               **(reference_options or {}), **DETERMINISTIC_OPTIONS}
  return tested, reference


@dataclasses.dataclass(frozen=True)
class _Comparison:
  """What every gradient of one :func:`gradient_agreement` shares."""
  algorithm: str
  params: dict[str, Any]
  hidden_dim: int
  processor: str
  seed: int

  def gradient(self, options: dict[str, Any], feedback: clrs.Feedback
               ) -> EquilibriumGradient:
    return equilibrium_gradient(
        self.algorithm, self.params, feedback, hidden_dim=self.hidden_dim,
        options=options, processor=self.processor, seed=self.seed)

  def compare(self, options: dict[str, Any], feedback: clrs.Feedback,
              ref: EquilibriumGradient) -> dict[str, Any]:
    """:func:`describe` of the gradient with ``options``, and its cosines
    and norm ratio against ``ref``'s."""
    g = self.gradient(options, feedback)
    out = describe(g, options)
    ref_norm = tree_norm64(ref.grads)
    out.update(
        cosine_all=cosine_similarity(g.grads, ref.grads),
        cosine_processor=cosine_similarity(processor_params(g.grads),
                                           processor_params(ref.grads)),
        norm_ratio=out['grad_norm'] / ref_norm if ref_norm else math.nan)
    return out


def _reference_on_converged(
    comparison: _Comparison, reference: dict[str, Any],
    feedback: clrs.Feedback, converged_only: bool
) -> tuple[EquilibriumGradient, clrs.Feedback, dict[str, Any], list[int]]:
  """The reference gradient on the graphs where its solve converged.

  Returns:
    The reference gradient, the batch it was taken on, :func:`describe` of
    the reference on the full batch, and the dropped graphs' indices.

  Raises:
    ValueError: no processor parameters, or no graph converged.
  """
  ref = comparison.gradient(reference, feedback)
  if not processor_params(ref.grads):
    raise ValueError('no processor parameters (no key contains '
                     "'clrs_processor') in the gradient")
  full_batch = describe(ref, reference)
  converged = np.asarray(ref.solver.converged, bool)
  if not converged_only or converged.all():
    return ref, feedback, full_batch, []
  if not converged.any():
    raise ValueError('the reference solve converged on no graph: '
                     f'{full_batch["solver"]}')
  feedback = data_lib.subsample(feedback, np.flatnonzero(converged))
  dropped = [int(i) for i in np.flatnonzero(~converged)]
  return comparison.gradient(reference, feedback), feedback, full_batch, (
      dropped)


def _add_comparisons(result: dict[str, Any], comparison: _Comparison,
                     tested: dict[str, Any], reference: dict[str, Any],
                     feedback: clrs.Feedback, ref: EquilibriumGradient,
                     which: tuple[bool, bool, bool]) -> None:
  """Adds to ``result`` the comparisons ``which`` asks for (tested at its
  own tolerance, at the reference's fixed point, the reference's check) and
  the headline figures (:func:`gradient_agreement`'s Returns)."""
  at_own_tolerance, at_reference_fixed_point, check_reference = which
  if at_own_tolerance:
    result['tested'] = comparison.compare(tested, feedback, ref)
  if at_reference_fixed_point:
    tight = {**tested, **{k: reference[k] for k in SOLVER_OPTION_NAMES
                          if k in reference}}
    result['tested_at_reference_fixed_point'] = comparison.compare(
        tight, feedback, ref)
  result['reference_check_cosine'] = math.nan
  result['reference_trusted'] = None
  if check_reference:
    result['reference_check'] = comparison.compare(
        {**reference, **REFERENCE_CHECK_OPTIONS}, feedback, ref)
    check = result['reference_check_cosine'] = result['reference_check'][
        'cosine_all']
    result['reference_trusted'] = bool(
        result['reference']['finite'] and check >= TRUSTED_CHECK_COSINE)
  main = result.get('tested', result.get('tested_at_reference_fixed_point'))
  for key in ('cosine_all', 'cosine_processor', 'norm_ratio'):
    result[key] = main[key]
  result['reference_rel_residual'] = float(np.max(ref.solver.rel_residual))


def gradient_agreement(algorithm: str, params: dict[str, Any],
                       feedback: clrs.Feedback, *, hidden_dim: int,
                       factory_options: dict[str, Any] | None = None,
                       reference_options: dict[str, Any] | None = None,
                       processor: str = 'deq_mpnn',
                       at_own_tolerance: bool = True,
                       at_reference_fixed_point: bool = True,
                       check_reference: bool = True,
                       converged_only: bool = True,
                       seed: int = 0) -> dict[str, Any]:
  """How a backward mode's gradient agrees with the implicit one (module doc).

  Args:
    algorithm: the CLRS algorithm the parameters were trained on.
    params: a ``deq_*`` ``BaselineModel`` 's parameters.
    feedback: a batch of B graphs of N nodes (made one-shot here).
    hidden_dim: the model's latent width.
    factory_options: processor options of the tested model; cell options
      (e.g. ``gate_bias``) must be those the parameters were trained with
      and are shared with the reference.
    reference_options: overrides of the reference's options.
    processor: the equilibrium processor kind.
    at_own_tolerance, at_reference_fixed_point, check_reference: make the
      ``tested``, ``tested_at_reference_fixed_point``, ``reference_check``.
    converged_only: compare on the graphs whose reference solve converged.
    seed: the rng of the loss.

  Returns:
    A JSON-ready dict: ``label`` (e.g. ``'phantom(1)'``); ``cosine_all``,
    ``cosine_processor`` (all parameters / the processor's), ``norm_ratio``
    (||tested|| / ||reference||) of ``tested``, else of the one at the
    reference's fixed point; ``reference_rel_residual`` (largest over the
    compared graphs), ``reference_check_cosine`` (nan unchecked),
    ``reference_trusted`` (None unchecked), ``graphs``, ``nodes``,
    ``dropped_graphs``; each comparison's :func:`describe` under its name.

  Raises:
    ValueError: no comparison asked for, no processor parameters, or the
      reference converged on no graph.
  """
  if not (at_own_tolerance or at_reference_fixed_point):
    raise ValueError('nothing to compare: set at_own_tolerance or '
                     'at_reference_fixed_point')
  tested, reference = compared_options(factory_options, reference_options)
  comparison = _Comparison(algorithm, params, hidden_dim, processor, seed)
  ref, feedback, full_batch, dropped = _reference_on_converged(
      comparison, reference, integration.one_shot_feedback(feedback),
      converged_only)
  result: dict[str, Any] = {
      'algorithm': algorithm, 'processor': processor,
      'hidden_dim': hidden_dim, 'label': backward_label(tested),
      'graphs': data_lib.num_graphs(feedback),
      'nodes': int(feedback.features.inputs[0].data.shape[1]),
      'dropped_graphs': dropped, 'reference_full_batch': full_batch,
      'reference': describe(ref, reference)}
  _add_comparisons(result, comparison, tested, reference, feedback, ref,
                   (at_own_tolerance, at_reference_fixed_point,
                    check_reference))
  return result


def format_gradient_agreement(result: dict[str, Any]) -> str:
  """One line per comparison of a :func:`gradient_agreement` result."""
  def line(name: str, r: dict[str, Any]) -> str:
    return (f'{name} vs implicit: cosine all={r["cosine_all"]:.4f}, '
            f'processor={r["cosine_processor"]:.4f}, '
            f'norm ratio={r["norm_ratio"]:.3f}, ref rel residual='
            f'{result["reference_rel_residual"]:.1e} (tested: rel residual '
            f'max {r["solver"]["rel_residual_max"]:.1e}, mean iterations '
            f'{r["solver"]["iterations_mean"]:.1f})')

  label = result['label']
  lines = []
  if 'tested' in result:
    lines.append(line(label, result['tested']))
  if 'tested_at_reference_fixed_point' in result:
    lines.append(line(f'{label} at the implicit fixed point',
                      result['tested_at_reference_fixed_point']))
  ref = result['reference']
  total = result['graphs'] + len(result['dropped_graphs'])
  text = (f'reference: implicit, {result["algorithm"]}, {result["graphs"]} '
          f'of {total} graphs of {result["nodes"]} nodes (dropped where its '
          f'solve did not converge), mean iterations '
          f'{ref["solver"]["iterations_mean"]:.0f}, gradient '
          f'{"finite" if ref["finite"] else "NOT FINITE"}')
  if 'reference_check' in result:
    text += (', check (adjoint solved 100x tighter) cosine='
             f'{result["reference_check_cosine"]:.4f}: ' + (
                 'trusted' if result['reference_trusted'] else
                 'NOT trusted, cosines against it are not meaningful'))
  lines.append(text)
  return '\n'.join(lines)
