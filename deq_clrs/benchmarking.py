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
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from typing import Any
from typing import Callable

import clrs
import jax
import numpy as np

from deq_clrs import clrs_adapter
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
    max_iter, eval_max_iter, rel_tol: DEAR's solver settings.
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
  max_iter: int = 40
  eval_max_iter: int = 160
  rel_tol: float = 0.1
  memory_caps: tuple[int, ...] = (10, 40, 160)
  seed: int = 0

  def __post_init__(self):
    unknown_alg = sorted(set(self.algorithms) - set(clrs.SPECS))
    if unknown_alg:
      raise ValueError(f'unknown algorithm(s) {unknown_alg}; valid: '
                       f'{sorted(clrs.SPECS)}')
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
    return clrs_adapter.get_processor_factory(
        'deq_mpnn', stats_log=stats_log, evaluation=evaluation, **options)
  if model == 'nar':
    return clrs_adapter.get_processor_factory('mpnn')
  if model == 'clrs_mpnn':
    return clrs.get_processor_factory('mpnn', use_ln=True, nb_triplet_fts=0)
  return clrs.get_processor_factory('triplet_gmpnn', use_ln=True,
                                    nb_triplet_fts=8)


def _make_model(spec, dummy, factory, config: BenchmarkConfig):
  return clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=dummy, processor_factory=factory,
      hidden_dim=config.hidden_size, encode_hints=False, decode_hints=False,
      learning_rate=3e-4, grad_clip_max_norm=1.0)


def _memory_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)


def feedback_memory(model, feedback) -> int:
  """Bytes XLA needs for one compiled training step of ``model``."""
  rng = jax.random.PRNGKey(0)
  lowered = model.jitted_feedback.lower(model._device_params, rng, feedback,  # pylint: disable=protected-access
                                        model._device_opt_state, 0)  # pylint: disable=protected-access
  return _memory_bytes(lowered.compile())


def predict_memory(model, features) -> int:
  """Bytes XLA needs for one compiled inference call of ``model``."""
  rng = jax.random.PRNGKey(0)
  lowered = model.jitted_predict.lower(model._device_params, rng, features,  # pylint: disable=protected-access
                                       0, False, False)
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
    prep = clrs_adapter.one_shot_feedback if one_shot else (lambda fb: fb)
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
    stats = clrs_adapter.SolverStatsLog() if one_shot else None
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
        timing['solver'] = clrs_adapter.SolverStatsLog.summarize(
            stats.drain())
      entry['inference'][str(n)] = timing
    result['models'][name] = entry

  dear = [m for m in ('dear_phantom', 'dear_implicit') if m in config.models]
  if dear:
    name = dear[0]
    fb = clrs_adapter.one_shot_feedback(train_fbs[0])
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
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the whole benchmark; returns a JSON-ready dict."""
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
  return '\n'.join(lines)
