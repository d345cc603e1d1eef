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
account of the compiled step (:mod:`deq_clrs.measure.baseline`), which is
deterministic, unlike the process's resident size. Every call goes through
the model's public ``init``, ``feedback`` and ``predict``.

With a :class:`~deq_clrs.measure.gradient_run.GradientAgreementConfig`,
:func:`run` also measures how well DEAR's phantom gradient agrees with the
implicit one (:mod:`deq_clrs.measure.gradient_agreement`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import clrs
import jax
import numpy as np

from deq_clrs import integration
from deq_clrs import solvers
from deq_clrs import stats as stats_lib
from deq_clrs.measure import baseline
from deq_clrs.measure import gradient_agreement
from deq_clrs.measure import gradient_run
from deq_clrs.training import data as data_lib

MODELS = ('dear_phantom', 'dear_implicit', 'nar', 'clrs_mpnn',
          'clrs_triplet_gmpnn')
DEAR_MODELS = ('dear_phantom', 'dear_implicit')
BASELINES = ('nar', 'clrs_mpnn', 'clrs_triplet_gmpnn')

Log = Callable[[str], None]


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
  """Counts XLA backend compilations while active (a context manager that
  listens to ``jax.monitoring``'s compile events)."""

  _EVENT = '/jax/core/compile/backend_compile_duration'

  def __init__(self):
    self.count = 0

  def _on_event(self, event: str, duration: float, **kwargs: Any) -> None:
    del duration, kwargs
    if event == self._EVENT:
      self.count += 1

  def __enter__(self) -> CompileCounter:
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._on_event)
    return self

  def __exit__(self, *exc) -> None:
    jax.monitoring.unregister_event_duration_listener(self._on_event)


def _processor_factory(model: str, config: BenchmarkConfig,
                       evaluation: bool = False,
                       stats_log: stats_lib.SolverStatsLog | None = None,
                       **overrides: Any) -> Callable[[int], Any]:
  """The processor factory of one of :data:`MODELS`."""
  if model in DEAR_MODELS:
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


def _model(spec: clrs.Spec, dummy: clrs.Feedback,
           factory: Callable[[int], Any], config: BenchmarkConfig
           ) -> clrs.models.BaselineModel:
  return baseline.baseline_model(spec, dummy, factory, config.hidden_size)


def _timed(fn: Callable[[int], Any], repeats: int) -> dict[str, float]:
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
  with CompileCounter() as counter:
    for i in range(1, repeats + 1):
      jax.block_until_ready(fn(i))
  median = statistics.median(times)
  return {'median_s': median, 'compile_s': max(first - median, 0.0),
          'recompilations': counter.count, 'batches': repeats + 1}


def _mean_steps(feedbacks: list[clrs.Feedback]) -> float:
  """Mean ground-truth trajectory length of a list of batches."""
  return float(np.mean([fb.features.lengths for fb in feedbacks]))


def _inference(name: str, model: clrs.models.BaselineModel,
               raws: list[clrs.Feedback], config: BenchmarkConfig,
               stats: tuple[clrs.models.BaselineModel,
                            stats_lib.SolverStatsLog] | None
               ) -> dict[str, Any]:
  """Times ``model.predict`` on ``raws`` (``repeats + 1`` batches of B
  graphs of one size) and, for DEAR, counts solver iterations on each
  batch with ``stats``'s logging twin of the model."""
  one_shot = name in DEAR_MODELS
  feats = [(integration.one_shot_feedback(fb) if one_shot else fb).features
           for fb in raws]
  timing = _timed(lambda i: model.predict(jax.random.PRNGKey(i), feats[i]),
                  config.repeats)
  timing['seconds_per_sample'] = timing['median_s'] / config.batch_size
  timing['memory_bytes'] = baseline.predict_memory(model, feats[-1])
  if stats is not None:
    stats_model, log = stats
    for f in feats:
      stats_model.predict(jax.random.PRNGKey(0), f)
    timing['solver'] = stats_lib.SolverStatsLog.summarize(log.drain())
  return timing


def _measure_model(name: str, algorithm: str, train: list[clrs.Feedback],
                   test: dict[int, list[clrs.Feedback]],
                   config: BenchmarkConfig, log: Log) -> dict[str, Any]:
  """One model's training step (on ``train``) and inference (at every size
  of ``test``); each list holds ``repeats + 1`` batches of B graphs."""
  spec = data_lib.algorithm_spec(algorithm)
  one_shot = name in DEAR_MODELS
  fbs = [integration.one_shot_feedback(fb) if one_shot else fb
         for fb in train]
  # Timed models send no statistics (a host callback inside the step
  # would be timed too); a separate logging twin counts iterations.
  model = _model(spec, fbs[0], _processor_factory(name, config), config)
  baseline.init_model(model, fbs[0].features, config.seed)
  log(f'[{algorithm}] {name}: training step at {config.train_size} nodes')
  entry: dict[str, Any] = {'train_step': _timed(
      lambda i: model.feedback(jax.random.PRNGKey(i), fbs[i]),
      config.repeats)}
  entry['train_step']['memory_bytes'] = baseline.feedback_memory(
      model, fbs[-1])
  eval_model = _model(spec, fbs[0], _processor_factory(
      name, config, evaluation=True), config)
  eval_model.params = model.params
  stats = None
  if one_shot:
    stats_log = stats_lib.SolverStatsLog()
    stats_model = _model(spec, fbs[0], _processor_factory(
        name, config, evaluation=True, stats_log=stats_log), config)
    stats_model.params = model.params
    stats = stats_model, stats_log
  entry['inference'] = {}
  for n, raws in test.items():
    log(f'[{algorithm}] {name}: inference at {n} nodes')
    entry['inference'][str(n)] = _inference(name, eval_model, raws, config,
                                            stats)
  return entry


def _memory_by_cap(name: str, algorithm: str, train: clrs.Feedback,
                   config: BenchmarkConfig) -> dict[str, Any]:
  """DEAR's training-step memory at every cap of ``config.memory_caps``
  (tolerance 0: every cap is reached)."""
  spec = data_lib.algorithm_spec(algorithm)
  fb = integration.one_shot_feedback(train)
  mem = {}
  for cap in config.memory_caps:
    model = _model(spec, fb, _processor_factory(
        name, config, max_iter=cap, rel_tol=0.0), config)
    baseline.init_model(model, fb.features, config.seed)
    mem[str(cap)] = baseline.feedback_memory(model, fb)
  return {'model': name, 'bytes': mem}


def benchmark_algorithm(algorithm: str, config: BenchmarkConfig,
                        log: Log = print) -> dict[str, Any]:
  """Measures every model of ``config`` on one algorithm.

  Returns:
    A JSON-ready dict: ``gt_steps_mean`` (size -> mean true steps),
    ``train_gt_steps_mean``, ``models`` (name -> ``train_step`` and
    ``inference`` by size), ``dear_train_memory_by_cap`` (if a DEAR model
    is measured) and ``ratios`` (:func:`ratios`).
  """
  count = config.repeats + 1
  train = data_lib.sample_batches(algorithm, config.train_size,
                                  config.batch_size, count, config.seed)
  test = {n: data_lib.sample_batches(algorithm, n, config.batch_size, count,
                                     config.seed + n)
          for n in config.sizes}
  result: dict[str, Any] = {
      'gt_steps_mean': {str(n): _mean_steps(fbs) for n, fbs in test.items()},
      'train_gt_steps_mean': _mean_steps(train),
      'models': {name: _measure_model(name, algorithm, train, test, config,
                                      log)
                 for name in config.models}}
  dear = [m for m in DEAR_MODELS if m in config.models]
  if dear:
    result['dear_train_memory_by_cap'] = _memory_by_cap(
        dear[0], algorithm, train[0], config)
  result['ratios'] = ratios(result['models'])
  return result


def _ratio(a: float, b: float) -> float:
  return float(a / b) if b else float('nan')


def ratios(models: dict[str, Any]) -> dict[str, dict[str, float]]:
  """DEAR / baseline ratios of every measured quantity (< 1: DEAR better)."""
  out = {}
  for dear in DEAR_MODELS:
    for base in BASELINES:
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


def run(config: BenchmarkConfig, log: Log = print,
        gradient: gradient_run.GradientAgreementConfig | None = None,
        profile_dir: str = '') -> dict[str, Any]:
  """Runs the whole benchmark; returns a JSON-ready dict.

  With ``gradient``, also runs
  :func:`~deq_clrs.measure.gradient_run.run_gradient_agreement` (results
  under ``'gradient_agreement'``, its settings under ``'gradient_config'``).
  With ``profile_dir``, the speed and memory measurements run under
  ``jax.profiler.trace``: a trace of every compile and step (TensorBoard's
  profile plugin, XProf or Perfetto read it) is written there, and the
  timings, slowed by the tracing, are for orientation only.
  """
  results = {
      'config': dataclasses.asdict(config),
      'device': str(jax.devices()[0]),
      'backend': jax.default_backend(),
      'jax_version': jax.__version__,
      'algorithms': {},
  }
  if profile_dir:
    results['profile_dir'] = profile_dir
  with (jax.profiler.trace(profile_dir) if profile_dir
        else contextlib.nullcontext()):
    for algorithm in config.algorithms:
      results['algorithms'][algorithm] = benchmark_algorithm(
          algorithm, config, log)
  if gradient is not None:
    results['gradient_config'] = dataclasses.asdict(gradient)
    results['gradient_agreement'] = gradient_run.run_gradient_agreement(
        gradient, log)
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


def _algorithm_table(algorithm: str, res: dict[str, Any]) -> list[str]:
  """The markdown table of one algorithm's models (one row each)."""
  sizes = list(next(iter(res['models'].values()))['inference'])
  lines = [f'### {algorithm} (true steps: '
           + ', '.join(f'{n} nodes: {res["gt_steps_mean"][n]:.1f}'
                       for n in sizes) + ')', '']
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
  return lines


def _algorithm_notes(res: dict[str, Any]) -> list[str]:
  """The lines under an algorithm's table: ratios, memory by cap,
  compilations after warm-up."""
  lines = [f'- {pair}: ' + ', '.join(f'{k} {v:.2f}x' for k, v in r.items())
           for pair, r in res['ratios'].items()]
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
  return lines


def format_table(results: dict[str, Any]) -> str:
  """A markdown summary of a :func:`run` result."""
  lines = []
  for algorithm, res in results['algorithms'].items():
    lines += _algorithm_table(algorithm, res) + _algorithm_notes(res)
  if 'gradient_agreement' in results:
    grad = results['gradient_agreement']
    cell = grad['cell']
    lines += [f'### Gradient agreement ({grad["algorithm"]}, DEAR cell: '
              f'{cell["source"]}, {cell["steps"]} training steps)', '']
    lines += [f'- {line}' for line in
              gradient_agreement.format_gradient_agreement(grad).splitlines()]
    lines.append('')
  return '\n'.join(lines)
