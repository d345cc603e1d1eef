"""Speed and memory of DEAR against step-by-step models, measured in one run.

Every model is an unchanged ``clrs.models.BaselineModel`` with the same hidden
size, batch size and graphs; only the processor (and, for DEAR, the one-shot
data form) differs:

* ``dear_phantom`` / ``dear_implicit``: ``deq_mpnn`` with the phantom or the
  implicit backward mode, fed one-shot data;
* ``nar``: the same Flax cell (``mpnn`` kind) run for the ground-truth number
  of steps, no hints (DEAR's baseline);
* ``clrs_mpnn`` / ``clrs_triplet_gmpnn``: CLRS's stock processors, run for
  the ground-truth number of steps, no hints.

Timings exclude warm-up (the first call, which compiles, is reported
separately as compile time) and are medians over repeats. Memory is XLA's own
account of the compiled step (arguments + outputs + temporaries - aliased),
which is deterministic, unlike the process's resident size.

:func:`gradient_agreement` measures the quality of a gradient instead: how
well DEAR's 1-step phantom gradient (or any backward mode) agrees with the
implicit gradient at a tightly converged fixed point, on a trained cell
(:func:`train_dear_cell`, :func:`load_dear_cell`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import statistics
import tempfile
import time
from typing import Any
from typing import Callable
from typing import NamedTuple

import clrs
import jax
import jax.numpy as jnp
import numpy as np

from deq_clrs import deq as deq_lib
from deq_clrs import integration
from deq_clrs import solvers
from deq_clrs import stats as stats_lib
from deq_clrs.training import data as data_lib

MODELS = ('dear_phantom', 'dear_implicit', 'nar', 'clrs_mpnn',
          'clrs_triplet_gmpnn')


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """What to measure.

  Attributes:
    algorithms: CLRS algorithm names.
    sizes: graph sizes (nodes) for inference.
    train_size: graph size of the training-step measurement.
    batch_size: graphs per batch, for every model.
    hidden_size: latent width, for every model.
    repeats: timed calls per measurement (after one warm-up call).
    models: a subset of :data:`MODELS`.
    max_iter, eval_max_iter, rel_tol: DEAR's solver settings (default: the
      library's, :class:`~deq_clrs.solvers.SolverConfig`).
    memory_caps: DEAR training caps at which the training step's memory is
      compared (with tolerance 0, so every cap is reached).
    seed: data and parameter seed.
  """
  algorithms: tuple[str, ...] = ('insertion_sort',)
  sizes: tuple[int, ...] = (16, 64)
  train_size: int = 16
  batch_size: int = 8
  hidden_size: int = 64
  repeats: int = 3
  models: tuple[str, ...] = MODELS
  max_iter: int = solvers.SolverConfig.max_iter
  eval_max_iter: int = solvers.SolverConfig.eval_max_iter
  rel_tol: float = solvers.SolverConfig.rel_tol
  memory_caps: tuple[int, ...] = (10, 40, 160)
  seed: int = 0

  def __post_init__(self):
    data_lib.check_algorithms(self.algorithms)
    unknown = sorted(set(self.models) - set(MODELS))
    if unknown:
      raise ValueError(f'unknown model(s) {unknown}; valid: {list(MODELS)}')
    if self.repeats < 1 or self.batch_size < 1 or self.hidden_size < 1:
      raise ValueError('repeats, batch_size and hidden_size must be >= 1')
    if not self.sizes or min(self.sizes) < 2:
      raise ValueError(f'sizes must be >= 2 nodes, got {self.sizes}')


class CompileCounter:
  """Counts XLA backend compilations while active (jax.monitoring events)."""

  _EVENT = '/jax/core/compile/backend_compile_duration'

  def __init__(self):
    self.count = 0
    self._active = False
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    if self._active and event == self._EVENT:
      self.count += 1

  def __enter__(self) -> CompileCounter:
    self.count = 0
    self._active = True
    return self

  def __exit__(self, *exc) -> None:
    self._active = False


def _processor_factory(model: str, config: BenchmarkConfig,
                       evaluation: bool = False, stats_log=None,
                       **overrides) -> Callable[[int], Any]:
  if model.startswith('dear_'):
    options = dict(backward=model[len('dear_'):], max_iter=config.max_iter,
                   eval_max_iter=config.eval_max_iter, rel_tol=config.rel_tol)
    options.update(overrides)
    return integration.get_processor_factory(
        'deq_mpnn', stats_log=stats_log, evaluation=evaluation, **options)
  if model == 'nar':
    return integration.get_processor_factory('mpnn')
  if model == 'clrs_mpnn':
    return clrs.get_processor_factory('mpnn', use_ln=True, nb_triplet_fts=0)
  return clrs.get_processor_factory('triplet_gmpnn', use_ln=True,
                                    nb_triplet_fts=8)


def _make_model(spec, dummy, factory, config: BenchmarkConfig):
  return _baseline_model(spec, dummy, factory, config.hidden_size)


def init_model(model: clrs.models.BaselineModel, features: clrs.Features,
               seed: int) -> None:
  """``BaselineModel.init`` with the network's init function jitted.

  CLRS runs ``init`` eagerly, which takes tens of seconds for an
  equilibrium processor on CPU (every primitive of the solver loop is
  dispatched on its own); the jitted init gives the same parameters.
  """
  init = jax.jit(lambda key, feats: model.net_fn.init(
      key, feats, True, algorithm_index=-1, return_hints=False,
      return_all_outputs=False))
  model.params = init(jax.random.PRNGKey(seed), [features])
  model.opt_state = model.opt.init(model.params)
  model.opt_state_skeleton = model.opt.init(jnp.zeros(1))


def _memory_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)


def feedback_memory(model, feedback) -> int:
  """Bytes XLA needs for one compiled training step of ``model``."""
  rng = jax.random.PRNGKey(0)
  lowered = model.jitted_feedback.lower(model.params, rng, feedback,
                                        model.opt_state, 0)
  return _memory_bytes(lowered.compile())


def predict_memory(model, features) -> int:
  """Bytes XLA needs for one compiled inference call of ``model``."""
  rng = jax.random.PRNGKey(0)
  lowered = model.jitted_predict.lower(model.params, rng, features, 0,
                                       False, False)
  return _memory_bytes(lowered.compile())


def _timed(fn: Callable[[int], Any], repeats: int,
           counter: CompileCounter) -> dict[str, float]:
  """Times ``fn(0)`` and counts compilations over ``fn(1..repeats)``.

  ``fn(i)`` runs the step on the i-th of ``repeats + 1`` distinct batches. The
  first call compiles; the timed calls repeat batch 0 (so no compilation can
  hide in them); then every other batch runs once while compilations are
  counted: a model whose shapes change from batch to batch recompiles there.
  """
  start = time.perf_counter()
  jax.block_until_ready(fn(0))
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(0))
    times.append(time.perf_counter() - start)
  with counter:
    for i in range(1, repeats + 1):
      jax.block_until_ready(fn(i))
  median = statistics.median(times)
  return {'median_s': median, 'compile_s': max(first - median, 0.0),
          'recompilations': counter.count, 'batches': repeats + 1}


def benchmark_algorithm(algorithm: str, config: BenchmarkConfig,
                        counter: CompileCounter,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Measures every model of ``config`` on one algorithm."""
  count = config.repeats + 1
  spec = data_lib.algorithm_spec(algorithm)
  train_fbs = data_lib.sample_batches(algorithm, config.train_size,
                                      config.batch_size, count, config.seed)
  test = {n: data_lib.sample_batches(algorithm, n, config.batch_size, count,
                                     config.seed + n)
          for n in config.sizes}
  steps = lambda fbs: float(np.mean([fb.features.lengths for fb in fbs]))
  result: dict[str, Any] = {
      'gt_steps_mean': {str(n): steps(fbs) for n, fbs in test.items()},
      'train_gt_steps_mean': steps(train_fbs),
      'models': {}}
  for name in config.models:
    one_shot = name.startswith('dear_')
    prep = integration.one_shot_feedback if one_shot else (lambda fb: fb)
    fbs = [prep(fb) for fb in train_fbs]
    # Timed models send no statistics (a host callback inside the step
    # would be timed too); a separate logging twin counts iterations.
    model = _make_model(spec, fbs[0], _processor_factory(name, config),
                        config)
    model.init(fbs[0].features, config.seed)
    entry: dict[str, Any] = {}
    log(f'[{algorithm}] {name}: training step at {config.train_size} nodes')
    entry['train_step'] = _timed(
        lambda i: model.feedback(jax.random.PRNGKey(i), fbs[i]),
        config.repeats, counter)
    entry['train_step']['memory_bytes'] = feedback_memory(model, fbs[-1])
    eval_model = _make_model(
        spec, fbs[0], _processor_factory(name, config, evaluation=True),
        config)
    eval_model.params = model.params
    stats = stats_lib.SolverStatsLog() if one_shot else None
    if stats is not None:
      stats_model = _make_model(spec, fbs[0], _processor_factory(
          name, config, evaluation=True, stats_log=stats), config)
      stats_model.params = model.params
    entry['inference'] = {}
    for n, raws in test.items():
      log(f'[{algorithm}] {name}: inference at {n} nodes')
      feats = [prep(fb).features for fb in raws]
      timing = _timed(
          lambda i, f=feats: eval_model.predict(jax.random.PRNGKey(i), f[i]),
          config.repeats, counter)
      timing['seconds_per_sample'] = timing['median_s'] / config.batch_size
      timing['memory_bytes'] = predict_memory(eval_model, feats[-1])
      if stats is not None:
        for f in feats:
          stats_model.predict(jax.random.PRNGKey(0), f)
        timing['solver'] = stats_lib.SolverStatsLog.summarize(
            stats.drain())
      entry['inference'][str(n)] = timing
    result['models'][name] = entry

  dear = [m for m in ('dear_phantom', 'dear_implicit') if m in config.models]
  if dear:
    name = dear[0]
    fb = integration.one_shot_feedback(train_fbs[0])
    mem = {}
    for cap in config.memory_caps:
      model = _make_model(spec, fb, _processor_factory(
          name, config, max_iter=cap, rel_tol=0.0), config)
      model.init(fb.features, config.seed)
      mem[str(cap)] = feedback_memory(model, fb)
    result['dear_train_memory_by_cap'] = {'model': name, 'bytes': mem}
  result['ratios'] = ratios(result['models'])
  return result


def _ratio(a, b):
  return float(a / b) if b else float('nan')


def ratios(models: dict[str, Any]) -> dict[str, dict[str, float]]:
  """DEAR / baseline ratios of every measured quantity (< 1: DEAR better)."""
  out = {}
  for dear in ('dear_phantom', 'dear_implicit'):
    for base in ('nar', 'clrs_mpnn', 'clrs_triplet_gmpnn'):
      if dear not in models or base not in models:
        continue
      d, b = models[dear], models[base]
      r = {'train_step_time': _ratio(d['train_step']['median_s'],
                                     b['train_step']['median_s']),
           'train_step_memory': _ratio(d['train_step']['memory_bytes'],
                                       b['train_step']['memory_bytes'])}
      for n in d['inference']:
        r[f'inference_time_{n}'] = _ratio(
            d['inference'][n]['median_s'], b['inference'][n]['median_s'])
        r[f'inference_memory_{n}'] = _ratio(
            d['inference'][n]['memory_bytes'],
            b['inference'][n]['memory_bytes'])
      out[f'{dear}/{base}'] = r
  return out


def run(config: BenchmarkConfig,
        log: Callable[[str], None] = print,
        gradient: GradientAgreementConfig | None = None) -> dict[str, Any]:
  """Runs the whole benchmark; returns a JSON-ready dict.

  With ``gradient``, also runs :func:`run_gradient_agreement` (results
  under ``'gradient_agreement'``, its settings under ``'gradient_config'``).
  """
  counter = CompileCounter()
  results = {
      'config': dataclasses.asdict(config),
      'device': str(jax.devices()[0]),
      'backend': jax.default_backend(),
      'jax_version': jax.__version__,
      'algorithms': {},
  }
  for algorithm in config.algorithms:
    results['algorithms'][algorithm] = benchmark_algorithm(
        algorithm, config, counter, log)
  if gradient is not None:
    results['gradient_config'] = dataclasses.asdict(gradient)
    results['gradient_agreement'] = run_gradient_agreement(gradient, log)
  return results


def prepare_output(path: str) -> None:
  """Creates the folder of an output file and checks it can be written, so
  that a measurement is never lost for want of a folder.

  Raises:
    OSError: the folder cannot be created or written.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  with tempfile.TemporaryFile(dir=folder):
    pass


def format_table(results: dict[str, Any]) -> str:
  """A markdown summary of a :func:`run` result."""
  lines = []
  for algorithm, res in results['algorithms'].items():
    sizes = list(next(iter(res['models'].values()))['inference'])
    lines.append(f'### {algorithm} (true steps: '
                 + ', '.join(f'{n} nodes: {res["gt_steps_mean"][n]:.1f}'
                             for n in sizes) + ')')
    lines.append('')
    head = ['model', 'train step ms', 'train MiB', 'compile s']
    for n in sizes:
      head += [f'infer ms/sample @{n}', f'infer MiB @{n}', f'iters @{n}']
    lines.append('| ' + ' | '.join(head) + ' |')
    lines.append('|' + '---|' * len(head))
    for name, m in res['models'].items():
      row = [name, f'{1e3 * m["train_step"]["median_s"]:.1f}',
             f'{m["train_step"]["memory_bytes"] / 2**20:.1f}',
             f'{m["train_step"]["compile_s"]:.1f}']
      for n in sizes:
        inf = m['inference'][n]
        its = inf.get('solver', {})
        row += [f'{1e3 * inf["seconds_per_sample"]:.2f}',
                f'{inf["memory_bytes"] / 2**20:.1f}',
                (f'{its["iterations_mean"]:.1f} (max {its["iterations_max"]})'
                 if its else '-')]
      lines.append('| ' + ' | '.join(row) + ' |')
    lines.append('')
    for pair, r in res['ratios'].items():
      lines.append(f'- {pair}: ' + ', '.join(f'{k} {v:.2f}x'
                                             for k, v in r.items()))
    if 'dear_train_memory_by_cap' in res:
      mem = res['dear_train_memory_by_cap']
      lines.append(f'- {mem["model"]} training-step memory by iteration cap: '
                   + ', '.join(f'{c}: {b / 2**20:.2f} MiB'
                               for c, b in mem['bytes'].items()))
    recompiles = {name: m['train_step']['recompilations'] + sum(
        i['recompilations'] for i in m['inference'].values())
                  for name, m in res['models'].items()}
    lines.append('- compilations after warm-up: ' + ', '.join(
        f'{k} {v}' for k, v in recompiles.items()))
    lines.append('')
  if 'gradient_agreement' in results:
    grad = results['gradient_agreement']
    cell = grad['cell']
    lines += [f'### Gradient agreement ({grad["algorithm"]}, DEAR cell: '
              f'{cell["source"]}, {cell["steps"]} training steps)', '']
    lines += [f'- {line}' for line in
              format_gradient_agreement(grad).splitlines()]
    lines.append('')
  return '\n'.join(lines)


# Gradient agreement: a backward mode (DEAR's phantom) vs. the implicit
# gradient at a tightly converged fixed point, on the same parameters, batch
# and rng.

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


def _baseline_model(spec: clrs.Spec, dummy: clrs.Feedback, factory,
                    hidden_dim: int, learning_rate: float = 3e-4
                    ) -> clrs.models.BaselineModel:
  return clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=dummy, processor_factory=factory,
      hidden_dim=hidden_dim, encode_hints=False, decode_hints=False,
      learning_rate=learning_rate, grad_clip_max_norm=1.0)


_GRADIENT_MODELS: collections.OrderedDict = collections.OrderedDict()
_GRADIENT_MODELS_MAX = 16


def _gradient_model(algorithm: str, hidden_dim: int, processor: str,
                    options: dict[str, Any], dummy: clrs.Feedback):
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
  model = _baseline_model(data_lib.algorithm_spec(algorithm), dummy,
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
  """How well a backward mode's gradient agrees with the implicit gradient.

  ``BaselineModel`` s are built on the same spec with the same parameters
  and differ only in the equilibrium settings; each computes the gradient
  of CLRS's loss on the same one-shot batch with the same rng (public
  ``compute_grad``):

  * ``reference``: ``factory_options`` updated with
    :data:`REFERENCE_OPTIONS` and then ``reference_options``: the implicit
    gradient at a fixed point solved to relative residual 1e-5;
  * ``tested`` (if ``at_own_tolerance``): ``factory_options`` as they are
    (default: DEAR's 1-step phantom gradient at relative tolerance 0.1,
    cap 40), so it differs from the reference both in the point (the
    loose fixed point) and in the backward pass;
  * ``tested_at_reference_fixed_point`` (if ``at_reference_fixed_point``):
    the tested backward mode with the reference's forward solver, so only
    the backward pass differs;
  * ``reference_check`` (if ``check_reference``): the reference with
    :data:`REFERENCE_CHECK_OPTIONS`; its cosine with the reference,
    ``reference_check_cosine``, says whether the reference is well defined.

  :data:`DETERMINISTIC_OPTIONS` (no noise, no Jacobian regulariser) are
  forced on every model. A graph whose reference solve misses its
  tolerance has no fixed point to differentiate at; with
  ``converged_only`` such graphs are dropped from the batch before any
  gradient is compared. Non-finite gradients are reported, not raised.

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
    at_own_tolerance: compare the tested mode at its own solver settings.
    at_reference_fixed_point: compare it at the reference's fixed point.
    check_reference: recompute the reference with another linear solver.
    converged_only: compare on the graphs whose reference solve converged.
    seed: the rng of the loss.

  Returns:
    A JSON-ready dict: ``label`` (e.g. ``'phantom(1)'``); ``cosine_all``
    and ``cosine_processor`` (cosine similarity of the tested and reference
    gradients over all parameters / the processor's), ``norm_ratio``
    (||tested|| / ||reference||, all parameters), all three from
    ``tested`` (else from ``tested_at_reference_fixed_point``);
    ``reference_rel_residual`` (largest per-graph relative residual of the
    reference solve on the compared graphs); ``reference_check_cosine``
    (nan if not checked) and ``reference_trusted`` (finite and check
    cosine >= :data:`TRUSTED_CHECK_COSINE`; None if not checked);
    ``graphs`` (compared), ``dropped_graphs``; and
    the details under ``reference``, ``reference_full_batch``, ``tested``,
    ``tested_at_reference_fixed_point`` and ``reference_check``.

  Raises:
    ValueError: no comparison asked for, no processor parameters, or the
      reference converged on no graph.
  """
  if not (at_own_tolerance or at_reference_fixed_point):
    raise ValueError('nothing to compare: set at_own_tolerance or '
                     'at_reference_fixed_point')
  base = dict(factory_options or {})
  tested = {**base, **DETERMINISTIC_OPTIONS}
  reference = {**base, **REFERENCE_OPTIONS, **(reference_options or {}),
               **DETERMINISTIC_OPTIONS}
  feedback = integration.one_shot_feedback(feedback)

  def grad(options: dict[str, Any], fb: clrs.Feedback) -> EquilibriumGradient:
    return equilibrium_gradient(algorithm, params, fb, hidden_dim=hidden_dim,
                                options=options, processor=processor,
                                seed=seed)

  def describe(g: EquilibriumGradient, options: dict[str, Any]):
    flat = _flat64(g.grads)
    return {'options': options, 'loss': g.loss,
            'grad_norm': tree_norm64(g.grads),
            'processor_grad_norm': tree_norm64(processor_params(g.grads)),
            'finite': bool(np.all(np.isfinite(flat))),
            'solver': summarize_solver(g.solver),
            'rel_residuals': [float(r) for r in g.solver.rel_residual]}

  ref = grad(reference, feedback)
  if not processor_params(ref.grads):
    raise ValueError('no processor parameters (no key contains '
                     "'clrs_processor') in the gradient")
  full_batch = describe(ref, reference)
  converged = np.asarray(ref.solver.converged, bool)
  dropped = []
  if converged_only and not converged.all():
    if not converged.any():
      raise ValueError('the reference solve converged on no graph: '
                       f'{full_batch["solver"]}')
    dropped = [int(i) for i in np.flatnonzero(~converged)]
    feedback = data_lib.subsample(feedback, np.flatnonzero(converged))
    ref = grad(reference, feedback)
  ref_norm = tree_norm64(ref.grads)

  def compare(options: dict[str, Any]) -> dict[str, Any]:
    g = grad(options, feedback)
    out = describe(g, options)
    out.update(
        cosine_all=cosine_similarity(g.grads, ref.grads),
        cosine_processor=cosine_similarity(processor_params(g.grads),
                                           processor_params(ref.grads)),
        norm_ratio=out['grad_norm'] / ref_norm if ref_norm else math.nan)
    return out

  result: dict[str, Any] = {
      'algorithm': algorithm, 'processor': processor,
      'hidden_dim': hidden_dim, 'label': backward_label(tested),
      'graphs': data_lib.num_graphs(feedback),
      'nodes': int(feedback.features.inputs[0].data.shape[1]),
      'dropped_graphs': dropped,
      'reference_full_batch': full_batch,
      'reference': describe(ref, reference)}
  if at_own_tolerance:
    result['tested'] = compare(tested)
  if at_reference_fixed_point:
    tight = {**tested, **{k: reference[k] for k in SOLVER_OPTION_NAMES
                          if k in reference}}
    result['tested_at_reference_fixed_point'] = compare(tight)
  result['reference_check_cosine'] = math.nan
  result['reference_trusted'] = None
  if check_reference:
    result['reference_check'] = compare(
        {**reference, **REFERENCE_CHECK_OPTIONS})
    check = result['reference_check_cosine'] = result['reference_check'][
        'cosine_all']
    result['reference_trusted'] = bool(
        result['reference']['finite'] and check >= TRUSTED_CHECK_COSINE)
  main = result.get('tested', result.get('tested_at_reference_fixed_point'))
  for key in ('cosine_all', 'cosine_processor', 'norm_ratio'):
    result[key] = main[key]
  result['reference_rel_residual'] = float(np.max(ref.solver.rel_residual))
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


@dataclasses.dataclass
class TrainedCell:
  """A DEAR model's parameters and what is needed to rebuild it.

  Attributes:
    algorithm: the CLRS algorithm it was trained on.
    params: CLRS ``BaselineModel`` parameters (Haiku path -> name -> array).
    hidden_dim: latent width.
    processor: the equilibrium processor kind (``deq_mpnn``, ...).
    options: the processor factory options it was trained with.
    steps: training steps taken.
    losses: training loss of every step (empty when loaded).
    source: ``'trained'``, or the workdir it was loaded from.
  """
  algorithm: str
  params: dict[str, Any]
  hidden_dim: int
  processor: str = 'deq_mpnn'
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  steps: int = 0
  losses: list[float] = dataclasses.field(default_factory=list)
  source: str = 'trained'


@dataclasses.dataclass(frozen=True)
class GradientAgreementConfig:
  """The gradient-agreement measurement of the benchmark.

  Attributes:
    algorithm: CLRS algorithm of the trained cell (ignored with
      ``workdir``: the run's algorithm is used).
    train_sizes: training graph sizes, cycled.
    steps: training steps.
    hidden_dim: latent width (ignored with ``workdir``).
    batch_size: graphs per training batch and in the compared batch.
    learning_rate: Adam's learning rate.
    size: nodes per graph of the compared batch.
    seed: parameter and data seed (the compared batch has its own sampler
      seed, ``seed + 7919 + size``, unseen in training).
    workdir: load the cell from this ``experiments/train.py`` workdir
      instead of training one.
  """
  algorithm: str = 'bfs'
  train_sizes: tuple[int, ...] = (8, 12)
  steps: int = 300
  hidden_dim: int = 32
  batch_size: int = 8
  learning_rate: float = 3e-3
  size: int = 12
  seed: int = 0
  workdir: str | None = None

  def __post_init__(self):
    data_lib.check_algorithms([self.algorithm])
    if self.steps < 0 or self.batch_size < 1 or self.hidden_dim < 1:
      raise ValueError('steps must be >= 0, batch_size and hidden_dim >= 1')
    if min(self.train_sizes + (self.size,)) < 4:
      raise ValueError('graph sizes must be >= 4 nodes')


# train_dear_cell's defaults are the measurement's.
_TRAIN_DEFAULTS = GradientAgreementConfig


def train_dear_cell(algorithm: str = _TRAIN_DEFAULTS.algorithm, *,
                    sizes: tuple[int, ...] = _TRAIN_DEFAULTS.train_sizes,
                    hidden_dim: int = _TRAIN_DEFAULTS.hidden_dim,
                    batch_size: int = _TRAIN_DEFAULTS.batch_size,
                    steps: int = _TRAIN_DEFAULTS.steps,
                    learning_rate: float = _TRAIN_DEFAULTS.learning_rate,
                    seed: int = _TRAIN_DEFAULTS.seed,
                    options: dict[str, Any] | None = None,
                    processor: str = 'deq_mpnn',
                    log: Callable[[str], None] | None = None) -> TrainedCell:
  """Trains a small DEAR ``BaselineModel`` on fresh CLRS samples.

  Step ``i`` trains on a new one-shot batch of ``batch_size`` graphs of
  ``sizes[i % len(sizes)]`` nodes (one CLRS sampler per size, seeded with
  ``seed + size``), with Adam at ``learning_rate`` and gradient clipping 1.
  The defaults are :class:`GradientAgreementConfig` 's.

  Args:
    algorithm: a CLRS algorithm.
    sizes: training graph sizes, cycled.
    hidden_dim: latent width.
    batch_size: graphs per step.
    steps: training steps (0 returns the initial parameters).
    learning_rate: Adam's learning rate.
    seed: parameter and data seed.
    options: processor options (default: DEAR's: phantom(1), relative
      tolerance 0.1, noise 1e-3).
    processor: the equilibrium processor kind.
    log: called with a progress line every 50 steps.

  Returns:
    A :class:`TrainedCell`.
  """
  options = dict(options or {})
  spec = data_lib.algorithm_spec(algorithm)
  per_size = max(1, math.ceil(steps / len(sizes)))
  batches = {n: [integration.one_shot_feedback(fb) for fb in
                 data_lib.sample_batches(algorithm, n, batch_size, per_size,
                                         seed + n)]
             for n in sizes}
  dummy = batches[sizes[0]][0]
  factory = integration.get_processor_factory(processor, **options)
  model = _baseline_model(spec, dummy, factory, hidden_dim, learning_rate)
  init_model(model, dummy.features, seed)
  losses = []
  for i in range(steps):
    fb = batches[sizes[i % len(sizes)]][i // len(sizes)]
    losses.append(float(model.feedback(jax.random.PRNGKey(seed + i), fb)))
    if log is not None and (i + 1) % 50 == 0:
      log(f'[{algorithm}] DEAR training step {i + 1}/{steps}: loss '
          f'{np.mean(losses[-50:]):.4f} (mean of the last 50)')
  return TrainedCell(algorithm=algorithm, params=model.params,
                     hidden_dim=hidden_dim, processor=processor,
                     options=options, steps=steps, losses=losses)


def load_dear_cell(workdir: str, which: str = 'best') -> TrainedCell:
  """Loads a DEAR model from an ``experiments/train.py`` workdir.

  Reads ``config.json`` (algorithm, hidden size, processor, cell and solver
  settings) and the latest checkpoint under ``checkpoints/``.

  Args:
    workdir: the run's working directory.
    which: ``'best'`` (best-by-validation parameters) or ``'last'``.

  Returns:
    A :class:`TrainedCell` whose ``options`` are the run's cell and
    equilibrium settings.

  Raises:
    ValueError: not a ``dear`` run, or a bad ``which``.
    FileNotFoundError: no config or no checkpoint in ``workdir``.
  """
  # Imported here: orbax is only needed to load checkpoints.
  from deq_clrs.training import checkpoints as ckpt_lib  # pylint: disable=g-import-not-at-top

  if which not in ('best', 'last'):
    raise ValueError(f"which must be 'best' or 'last', got {which!r}")
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  if config.get('model') != 'dear':
    raise ValueError(f'{workdir} holds a {config.get("model")!r} run; '
                     'gradient agreement needs a dear run')
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FileNotFoundError(f'no checkpoints under {workdir}')
  checkpointer = ckpt_lib.Checkpointer(workdir)
  try:
    state = checkpointer.restore(None)
  finally:
    checkpointer.close()
  params = state['best_params' if which == 'best' else 'params']
  params = jax.tree_util.tree_map(np.asarray, params)
  cell = dict(config['cell'])
  cell['mid_size'] = cell['mid_size'] or None  # 0 = the hidden size.
  return TrainedCell(
      algorithm=config['algorithm'], params=params,
      hidden_dim=int(config['hidden_size']),
      processor=config.get('processor') or 'deq_mpnn',
      options={**cell, **config['deq']}, steps=int(state['step']),
      source=os.path.abspath(workdir))


def run_gradient_agreement(config: GradientAgreementConfig,
                           log: Callable[[str], None] = print
                           ) -> dict[str, Any]:
  """Trains (or loads) a DEAR cell and runs :func:`gradient_agreement`.

  The tested gradient is the one the cell was trained with (DEAR's
  phantom(1) by default), at its own solver settings.

  Returns:
    :func:`gradient_agreement` 's dict with a ``cell`` entry saying where
    the parameters came from (``source``, ``steps``, ``final_loss``: mean
    training loss of the last 10 % of steps).
  """
  if config.workdir:
    log(f'loading a DEAR cell from {config.workdir}')
    cell = load_dear_cell(config.workdir)
  else:
    log(f'training a DEAR cell on {config.algorithm} for {config.steps} '
        'steps')
    cell = train_dear_cell(
        config.algorithm, sizes=config.train_sizes,
        hidden_dim=config.hidden_dim, batch_size=config.batch_size,
        steps=config.steps, learning_rate=config.learning_rate,
        seed=config.seed, log=log)
  (feedback,) = data_lib.sample_batches(
      cell.algorithm, config.size, config.batch_size, 1,
      config.seed + 7919 + config.size)
  log('comparing gradients')
  result = gradient_agreement(cell.algorithm, cell.params, feedback,
                              hidden_dim=cell.hidden_dim,
                              factory_options=cell.options,
                              processor=cell.processor, seed=config.seed)
  tail = cell.losses[-max(1, len(cell.losses) // 10):]
  result['cell'] = {
      'source': cell.source, 'steps': cell.steps,
      'final_loss': float(np.mean(tail)) if tail else None,
      'options': cell.options}
  return result
