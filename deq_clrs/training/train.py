"""Training and evaluation of DEAR and its NAR baselines on one algorithm.

:func:`train_and_evaluate` is the whole experiment: it loads (or makes and
caches) the datasets, builds the models, trains with periodic validation and
resumable checkpoints, scores the best-by-validation parameters on every
test size and writes ``results.json``, TensorBoard metrics and checkpoints
into the working directory. :func:`evaluate_checkpoint` scores a finished or
interrupted run's checkpoint without training.
"""

from __future__ import annotations

import json
import logging as pylogging
import math
import os
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import clrs
import jax
import ml_collections
import numpy as np
from absl import logging

from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import data as data_lib
from deq_clrs.training import models as models_lib
from deq_clrs.training import parallel
from deq_clrs.training import preflight
from deq_clrs.training import progress
from deq_clrs.training import provenance
from deq_clrs.training import reference_data
from deq_clrs.training import run_config
from deq_clrs.training.errors import DivergedError
from deq_clrs.training.errors import NonFiniteLossError
from deq_clrs.training.errors import UserError

# Settings a rerun in the same workdir may change; anything else must match
# the run being resumed.
RESUMABLE_CHANGES = frozenset({'train_steps', 'test_sizes', 'data_dir',
                               'log_every', 'compilation_cache_dir'})


def quiet_orbax_logs() -> None:
  """Hides orbax's INFO lines (several per checkpoint) from absl's log."""
  def keep(record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING
            or f'{os.sep}orbax{os.sep}' not in record.pathname)
  logging.get_absl_handler().addFilter(keep)


def _concat(trees: list[Any]) -> Any:
  return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0),
                                *trees)


def per_graph_scores(outputs: Sequence[Any], preds: dict[str, Any]
                     ) -> list[float]:
  """CLRS's score of each graph alone: ``clrs.evaluate`` on that graph's
  slice of the outputs and predictions (the mean over outputs, as CLRS
  scores a set), in the dataset's order.

  Args:
    outputs: the dataset's output DataPoints (graphs along axis 0).
    preds: the model's predictions, name -> DataPoint (graphs along axis 0).
  """
  outputs = jax.tree_util.tree_map(np.asarray, tuple(outputs))
  preds = jax.tree_util.tree_map(np.asarray, preds)
  graphs = outputs[0].data.shape[0]
  scores = []
  for i in range(graphs):
    one = lambda x, i=i: x[i:i + 1]
    scores.append(float(clrs.evaluate(
        jax.tree_util.tree_map(one, outputs),
        jax.tree_util.tree_map(one, preds))['score']))
  return scores


def summarize_stats(stats: dict[str, np.ndarray]) -> dict[str, float]:
  """Means and maxima of per-graph solver (or termination) statistics."""
  out = {'graphs': int(stats['iterations'].size),
         'iterations_mean': float(np.mean(stats['iterations'])),
         'iterations_max': int(np.max(stats['iterations'])),
         'converged_fraction': float(np.mean(stats['converged']))}
  if 'rel_residual' in stats:
    out['rel_residual_mean'] = float(np.mean(stats['rel_residual']))
    out['rel_residual_max'] = float(np.max(stats['rel_residual']))
  return out


def _evaluate_batch(models: models_lib.Models, params: Any, key: jax.Array,
                    feedback: clrs.Feedback, with_loss: bool,
                    batch_size: int):
  """``models.evaluate`` on one batch; running out of memory is a UserError.

  Memory grows with the batch and steeply with the graph size (node pairs,
  or triplets for Floyd-Warshall: 128-node graphs in batches of 50 ask for
  about 54 GB), so the message names both and the setting that fixes it.
  """
  try:
    return models.evaluate(params, key, feedback, with_loss)
  except jax.errors.JaxRuntimeError as error:
    if 'RESOURCE_EXHAUSTED' not in str(error):
      raise
    graphs, nodes = data_lib.num_graphs(feedback), data_lib.num_nodes(feedback)
    raise UserError(
        f'out of memory scoring a batch of {graphs} graphs of {nodes} nodes '
        f'(eval_batch_size={batch_size}): score fewer graphs at a time '
        f'(python -m experiments.evaluate --eval_batch_size=... for a saved '
        f'run, --config.eval_batch_size=... for a new one)') from None


def evaluate(models: models_lib.Models, params: Any, dataset: clrs.Feedback,
             *, batch_size: int, seed: int, timed: bool = False,
             with_loss: bool = False, per_graph: bool = False
             ) -> dict[str, Any]:
  """Scores parameters on a whole cached dataset.

  Args:
    models: the model's steps (its evaluation network predicts).
    params: parameters to score (replicated on the devices, or on the host).
    dataset: a cached (unprepared) dataset.
    batch_size: graphs per evaluation call.
    seed: PRNG seed of the evaluation calls.
    timed: report ``seconds_per_sample`` of the calls, compilation
      excluded.
    with_loss: also report ``'loss'``, the mean task loss per graph, from
      the same forward passes as the scores. It is CLRS's loss (outputs,
      plus nar_lt's termination hint); DEAR's Jacobian regulariser only
      enters gradients, never this value.

  Returns:
    ``{'score': CLRS score (mean of per-output scores), 'outputs': {name:
    score}, 'gt_steps_mean': float, 'graphs': int}`` plus
    ``'scores_per_graph'`` (the CLRS score of each graph alone,
    :func:`per_graph_scores`) with ``per_graph``,
    ``'seconds_per_sample'`` and ``'load'`` (the machine's load after the
    timing and other processes' share of this one's CPUs during it:
    ``provenance.machine_load``) when timed, ``'loss'`` with
    ``with_loss``, and ``'solver'`` (iteration statistics per graph: solver
    iterations for DEAR, processor steps taken for nar_lt) for models that
    choose their own number of steps.
  """
  chunks = data_lib.batches(dataset, batch_size)
  key = jax.random.PRNGKey(seed)
  params = models.stepper.replicate(params)
  # The first batch of each shape compiles: time only the others, or, if
  # every batch compiles, a second run of the first one.
  preds, stats, seconds, timed_graphs, shapes = [], [], 0.0, 0, set()
  since = provenance.cpu_times() if timed else None
  loss_sum = 0.0  # A device scalar once added to: read at the end.
  for fb in chunks:
    start = time.perf_counter()
    out = _evaluate_batch(models, params, key, fb, with_loss, batch_size)
    preds.append(out.preds)
    if out.stats is not None:
      stats.append(out.stats)
    if with_loss:
      loss_sum = loss_sum + out.loss * data_lib.num_graphs(fb)
    shape = data_lib.num_graphs(fb)
    if shape in shapes:
      seconds += time.perf_counter() - start
      timed_graphs += shape
    shapes.add(shape)
  if timed and not timed_graphs:
    start = time.perf_counter()
    models.evaluate(params, key, chunks[0], with_loss)
    seconds = time.perf_counter() - start
    timed_graphs = data_lib.num_graphs(chunks[0])
  preds = _concat(preds)
  scores = clrs.evaluate(dataset.outputs, preds)
  result = {
      'score': float(scores['score']),
      'outputs': {k: float(v) for k, v in scores.items() if k != 'score'},
      'gt_steps_mean': data_lib.mean_steps(dataset),
      'graphs': data_lib.num_graphs(dataset),
  }
  if per_graph:
    result['scores_per_graph'] = per_graph_scores(dataset.outputs, preds)
  if with_loss:
    result['loss'] = float(loss_sum) / data_lib.num_graphs(dataset)
  if timed:
    result['seconds_per_sample'] = seconds / timed_graphs
    # Right after the timing; others' use of this process's CPUs during it.
    result['load'] = provenance.machine_load(since=since)
  if stats:
    result['solver'] = summarize_stats(_concat(stats))
  return result


def _data_dir(config: ml_collections.ConfigDict) -> str:
  return os.path.expanduser(config.data_dir)


def _eval_set_args(config: ml_collections.ConfigDict, split: str,
                   size: int) -> dict[str, Any]:
  samples = config.val_samples if split == 'val' else config.test_samples
  args = dict(algorithm=config.algorithm, split=split, size=size,
              num_samples=samples, data_dir=_data_dir(config),
              with_hints=models_lib.uses_hints(config))
  if config.eval_sets == 'reference':
    return args
  return dict(args, data_seed=config.data_seed,
              er_probs=tuple(config.er_probs), random_pos=config.random_pos)


def _eval_data_module(config: ml_collections.ConfigDict):
  """The module whose ``load_dataset``/``cache_path`` make the run's
  validation and test sets (``config.eval_sets``)."""
  return reference_data if config.eval_sets == 'reference' else data_lib


def load_eval_set(config: ml_collections.ConfigDict, split: str,
                  size: int) -> clrs.Feedback:
  """The cached validation or test set of a config at one size."""
  return _eval_data_module(config).load_dataset(
      **_eval_set_args(config, split, size))


def eval_set_path(config: ml_collections.ConfigDict, split: str,
                  size: int) -> str:
  """The cache file of :func:`load_eval_set`'s dataset (for messages)."""
  return _eval_data_module(config).cache_path(
      **_eval_set_args(config, split, size))


def _check_finite_eval_loss(loss: float, what: str, path: str,
                            consequence: str) -> None:
  """Stops at a NaN or inf validation or test loss (``what``: which loss
  of which parameters; ``path``: its dataset's cache file;
  ``consequence``: what was left undone).

  Raises:
    NonFiniteLossError: naming them and the likely causes.
  """
  if not math.isfinite(loss):
    raise NonFiniteLossError(
        f'{what} is {loss} (not finite), so {consequence}; the likely '
        f'causes: a damaged dataset cache file {path} (delete it and run '
        f'again: it is generated again from its seed), or a model that '
        f'diverged (train in a new workdir with a lower '
        f'--config.learning_rate)')


def _write_json(obj: Any, path: str) -> None:
  """Writes JSON atomically, from process 0 only (multi-host runs)."""
  if jax.process_index() != 0:
    return
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _check_resumable(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a config that differs from the workdir's ``config.json``."""
  path = os.path.join(workdir, 'config.json')
  current = json.loads(config.to_json())
  if os.path.exists(path):
    try:
      with open(path) as f:
        saved = json.load(f)
    except (OSError, ValueError) as error:
      raise UserError(f'cannot read {path} ({error}); restore it, or use a '
                      f'new --workdir') from error
    saved = run_config.filled(saved)
    changed = sorted(k for k in set(saved) | set(current)
                     if saved.get(k) != current.get(k)
                     and k not in RESUMABLE_CHANGES)
    if changed:
      diff = '; '.join(f'{k}: {saved.get(k)!r} there, {current.get(k)!r} now'
                       for k in changed)
      raise UserError(
          f'{workdir} holds a run with a different config (keys {changed}: '
          f'{diff}); use a new --workdir, or the same settings to resume it')


def _finished_results(config: ml_collections.ConfigDict,
                      workdir: str) -> dict[str, Any] | None:
  """The workdir's ``results.json`` if it ran ``config.train_steps`` or more.

  A run asked for more steps than its results have is not finished (it
  continues from its checkpoint); an unreadable results file is ignored.
  """
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      results = json.load(f)
    done = int(results['train_steps'])
  except (OSError, ValueError, KeyError, TypeError) as error:
    logging.warning('%s is unreadable (%s); finishing the run again', path,
                    error)
    return None
  return results if done >= config.train_steps else None


def _check_no_later_checkpoint(config: ml_collections.ConfigDict,
                               workdir: str) -> None:
  """Refuses to resume a run whose checkpoints are past ``train_steps``."""
  steps = ckpt_lib.saved_steps(workdir)
  if steps and steps[-1] > config.train_steps:
    raise UserError(
        f'{workdir} holds a checkpoint at step {steps[-1]}, past '
        f'train_steps={config.train_steps}; rerun with train_steps >= '
        f'{steps[-1]} to continue it, or score it with python -m '
        f'experiments.evaluate --workdir={workdir}')


def _initial_state(models: models_lib.Models) -> dict[str, Any]:
  """The checkpoint of a fresh run (host arrays): the template that a
  checkpoint is restored into."""
  params = parallel.to_host(models.initial_state.params)
  return {
      'params': params,
      'opt_state': parallel.to_host(models.initial_state.opt_state),
      'best_params': params,
      'step': ckpt_lib.scalar(0, np.int64),
      'best_step': ckpt_lib.scalar(0, np.int64),
      # The best validation score and loss, and the selection criterion's
      # value there (higher is better: the score, or minus the loss).
      'best_val': ckpt_lib.scalar(-np.inf),
      'best_val_score': ckpt_lib.scalar(-np.inf),
      'best_val_loss': ckpt_lib.scalar(np.inf),
      'train_seconds': ckpt_lib.scalar(0.0),
  }


HISTORY_FILE = 'history.jsonl'


def _read_lines(path: str) -> list[dict[str, Any]]:
  """The JSON lines of ``path`` (none if it does not exist), up to the first
  line cut short by a kill."""
  entries = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          entries.append(json.loads(line))
        except json.JSONDecodeError:
          break
  return entries


def _rewrite_lines(path: str, entries: list[dict[str, Any]]) -> None:
  """Replaces ``path`` with one JSON line per entry (process 0 only)."""
  if jax.process_index() != 0:
    return
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    for entry in entries:
      f.write(json.dumps(entry, sort_keys=True) + '\n')
  os.replace(tmp, path)


class History:
  """The learning curve: one JSON line per validation, in the workdir.

  A resumed run drops the entries after its checkpoint's step (they are
  recomputed), so the file always describes one uninterrupted run.
  """

  def __init__(self, workdir: str, resume_step: int):
    self.path = os.path.join(workdir, HISTORY_FILE)
    self.entries = [e for e in _read_lines(self.path)
                    if e['step'] <= resume_step]
    _rewrite_lines(self.path, self.entries)

  def append(self, entry: dict[str, Any]) -> None:
    self.entries = [e for e in self.entries if e['step'] != entry['step']]
    self.entries.append(entry)
    if jax.process_index() == 0:
      with open(self.path, 'a') as f:
        f.write(json.dumps(entry, sort_keys=True) + '\n')


SEGMENTS_FILE = 'segments.jsonl'


def code_segments(workdir: str, start_step: int,
                  training: bool) -> list[dict[str, Any]]:
  """Which code trained which steps: the record in ``segments.jsonl``, one
  JSON line per start or resume of training, ``{'from_step': s, 'commit':
  ..., 'dirty': ..., 'packages': {...}}`` (:func:`provenance.code_version`).

  ``results.json``'s ``code_version`` names only the code that finished a
  run; its ``code_versions`` lists these segments, so a run resumed on
  another commit says so. With ``training`` (steps are left to train), a
  segment starts at ``start_step``, replacing those from ``start_step`` on
  (as in :class:`History`, those steps are trained again); without (a run
  killed between its last checkpoint and ``results.json``), the record is
  returned as it is. A first segment that starts after step 0 belongs to a
  run begun before this record existed: the code of its earlier steps is
  unknown.
  """
  path = os.path.join(workdir, SEGMENTS_FILE)
  entries = _read_lines(path)
  if not training:
    return entries
  entries = [e for e in entries if e['from_step'] < start_step]
  entries.append({'from_step': start_step, **provenance.code_version()})
  _rewrite_lines(path, entries)
  return entries


class _NoWriter:
  """Stands in for the TensorBoard writer on processes other than 0."""

  def scalar(self, *args, **kwargs) -> None:
    del args, kwargs

  def flush(self) -> None:
    pass


def _summary_writer(workdir: str, enabled: bool = True):
  if jax.process_index() != 0 or not enabled:
    return _NoWriter()
  # Imported here: it needs TensorFlow, which a run without TensorBoard
  # output does not.
  from flax.metrics import tensorboard  # pylint: disable=g-import-not-at-top
  return tensorboard.SummaryWriter(os.path.join(workdir, 'tensorboard'))


def _log_scalars(writer, step: int, prefix: str,
                 values: dict[str, Any]) -> None:
  for name, value in values.items():
    if isinstance(value, (int, float)) and math.isfinite(value):
      writer.scalar(f'{prefix}/{name}', value, step)


def _eval_scalars(result: dict[str, Any]) -> dict[str, float]:
  values = {'score': result['score'], **result['outputs']}
  for k, v in result.get('solver', {}).items():
    values[f'solver_{k}'] = v
  if 'seconds_per_sample' in result:
    values['seconds_per_sample'] = result['seconds_per_sample']
  return values


def _test_results(models: models_lib.Models, params: Any,
                  config: ml_collections.ConfigDict,
                  sizes: Sequence[int], writer, step: int,
                  params_step: int) -> dict[str, Any]:
  """Scores ``params`` (those after ``params_step`` training steps) on the
  test sets; fields of ``results.json``. ``test_scores_per_graph``: size
  -> the score of each test graph alone, in the test set's order (every
  run of a size shares its test set, so the lists of two runs pair up
  graph by graph).

  Raises:
    NonFiniteLossError: a test loss is NaN or inf (before anything is
      written).
  """
  out = {'test_scores': {}, 'test_loss': {}, 'gt_steps_mean': {},
         'seconds_per_sample': {}, 'load': {}, 'solver': {},
         'test_scores_per_graph': {}}
  for size in sizes:
    dataset = load_eval_set(config, 'test', size)
    result = evaluate(models, params, dataset,
                      batch_size=config.eval_batch_size, seed=config.seed,
                      timed=True, with_loss=True, per_graph=True)
    _check_finite_eval_loss(
        result['loss'], f'the test loss at n={size} of the parameters of '
        f'step {params_step}', eval_set_path(config, 'test', size),
        'no results file was written')
    key = str(size)
    out['test_scores'][key] = {'score': result['score'], **result['outputs']}
    out['test_scores_per_graph'][key] = result['scores_per_graph']
    out['test_loss'][key] = result['loss']
    out['gt_steps_mean'][key] = result['gt_steps_mean']
    out['seconds_per_sample'][key] = result['seconds_per_sample']
    out['load'][key] = result['load']
    if 'solver' in result:
      out['solver'][key] = result['solver']
    logging.info('test n=%d: score %.4f, loss %.4f (%d graphs, %.1f true '
                 'steps, %.2e s/graph)%s', size, result['score'],
                 result['loss'], result['graphs'],
                 result['gt_steps_mean'], result['seconds_per_sample'],
                 '' if 'solver' not in result else
                 ', solver iterations mean %.1f max %d' % (
                     result['solver']['iterations_mean'],
                     result['solver']['iterations_max']))
    if provenance.shared_cores(result['load']):
      logging.warning('test n=%d was timed while other jobs shared the '
                      'cores (%s): its s/graph is slower than the model '
                      'alone', size, provenance.describe(result['load']))
    _log_scalars(writer, step, f'test_{size}',
                 {**_eval_scalars(result), 'loss': result['loss']})
  if not out['solver']:
    out['solver'] = None  # The model runs the true number of steps.
  return out


class _Eta:
  """Time left, from the stretches of training that compiled nothing.

  Training steps are dispatched without waiting for the device, so the
  time of one step says little; the time between two points where the host
  has waited for the device (the log lines, which read the loss back) says
  how long the steps between them took, validations and checkpoints
  included. A stretch in which some step compiled (its batch had a shape not
  seen before in this process: a new graph size or trajectory length) or
  the first validation ran is left out of the mean time per step, since
  compiling is paid once.
  """

  def __init__(self, total_steps: int, validated: bool):
    self.total_steps = total_steps
    self.shapes = set()
    self.seconds, self.steps = 0.0, 0
    self._validated = validated
    self._clean = True

  def start_step(self, feedback: clrs.Feedback) -> bool:
    """Notes the shape of the batch of the step about to be dispatched;
    returns whether it is new (the step compiles)."""
    shape = tuple(np.shape(x) for x in jax.tree_util.tree_leaves(feedback))
    new = shape not in self.shapes
    if new:
      self._clean = False
    self.shapes.add(shape)
    return new

  def validated(self) -> None:
    """Notes a validation (the first one compiles)."""
    if not self._validated:
      self._clean, self._validated = False, True

  def synced(self, steps: int, seconds: float) -> None:
    """Called where the device has finished every step dispatched so far:
    the stretch since the last such point took ``steps`` steps and
    ``seconds`` seconds."""
    if self._clean and steps > 0:
      self.seconds += seconds
      self.steps += steps
    self._clean = True

  @property
  def timed(self) -> bool:
    """Whether a stretch without compiling has been timed yet."""
    return self.steps > 0

  def text(self, step: int) -> str:
    if not self.steps:
      return 'after warm-up'
    return f'{(self.total_steps - step) * self.seconds / self.steps:.0f} s'


def _log_compiling(config: ml_collections.ConfigDict,
                   stream: data_lib.TrainStream, step: int) -> None:
  sizes = stream.sizes
  logging.info(
      'compiling (step %d): the first training step of each batch shape '
      '(%d graphs of %s nodes%s) and the first validation (%d graphs of %d '
      'nodes, batches of %d) compile before they run, which can take '
      'minutes on a CPU (a line every 30 s says what is running)', step,
      config.batch_size,
      sizes[0] if len(sizes) == 1 else f'{sizes[0]}..{sizes[-1]}',
      '' if config.model == 'dear' else ', and each number of steps',
      config.val_samples, config.val_size, config.eval_batch_size)


def _final_train_loss(loss: float, step: int,
                      history: History) -> float | None:
  """The last step's loss; from the learning curve if this invocation ran no
  step (killed after the last checkpoint, before ``results.json``)."""
  if math.isfinite(loss):
    return loss
  last = [e for e in history.entries if e['step'] == step]
  return last[-1].get('train_loss') if last else None


def _start_run(config: ml_collections.ConfigDict,
               workdir: str) -> dict[str, Any] | None:
  """Checks a run can start or resume in ``workdir`` and writes its
  ``config.json``; returns the results of a run that is already finished
  (then nothing is written)."""
  models_lib.check_config(config)
  preflight.prepare_workdir(workdir)
  _check_resumable(config, workdir)
  finished = _finished_results(config, workdir)
  if finished is not None:
    # Nothing is written: scoring it again is experiments.evaluate's job.
    logging.info(
        'nothing to do: the run in %s is finished (%d steps%s); its scores '
        'are in %s. To test it again (other sizes or solver settings): '
        'python -m experiments.evaluate --workdir=%s', workdir,
        finished['train_steps'],
        '' if finished['train_steps'] == config.train_steps else
        f', more than train_steps={config.train_steps}',
        os.path.join(workdir, 'results.json'), workdir)
    return finished
  _check_no_later_checkpoint(config, workdir)
  _write_json(json.loads(config.to_json()),
              os.path.join(workdir, 'config.json'))
  return None


def _restore_training(models: models_lib.Models,
                      checkpointer: ckpt_lib.Checkpointer,
                      config: ml_collections.ConfigDict
                      ) -> tuple[dict[str, Any], Any]:
  """``(checkpoint state on the host, training state on the devices)``:
  from the newest readable checkpoint, or fresh."""
  state = _initial_state(models)
  if checkpointer.latest_step() is None:
    return state, models.initial_state
  restored, _ = checkpointer.restore_newest_readable(state)
  if restored is None:
    logging.warning('no readable checkpoint under %s: starting afresh',
                    checkpointer.directory)
    return state, models.initial_state
  logging.info('resumed from step %d of %d', int(restored['step']),
               config.train_steps)
  return restored, models.stepper.state(
      restored['params'], restored['opt_state'], int(restored['step']))


class _Validation:
  """Scores parameters on the validation set (score and loss in one pass),
  keeps the best-so-far bookkeeping of the checkpoint state, the learning
  curve and the log."""

  def __init__(self, models: models_lib.Models,
               config: ml_collections.ConfigDict, val_set: clrs.Feedback,
               writer, history: History):
    self.models, self.config, self.val_set = models, config, val_set
    self.writer, self.history = writer, history
    # Start of the interval whose sharing of the cores the next validation
    # records (this run's training since it started or resumed).
    self._since = provenance.cpu_times()

  def __call__(self, state: dict[str, Any], params: Any, step: int,
               loss: float) -> bool:
    """Validates ``params`` after ``step`` steps (``loss``: the last
    training loss); updates ``state``'s best entries and returns whether
    these parameters are the new best.

    Raises:
      NonFiniteLossError: the validation loss is NaN or inf (before
        ``state``, the history or the log see it).
    """
    config = self.config
    # The load of the training minute before this validation, and how much
    # of this run's CPUs other processes used since the previous one (the
    # report marks train s of runs that shared their cores:
    # experiments.report).
    load = provenance.machine_load(since=self._since)
    self._since = provenance.cpu_times()
    val = evaluate(self.models, params, self.val_set,
                   batch_size=config.eval_batch_size, seed=config.seed,
                   with_loss=True)
    _check_finite_eval_loss(
        val['loss'], f'the validation loss at step {step}',
        eval_set_path(config, 'val', config.val_size),
        'the run stopped before selecting or checkpointing these parameters, '
        'without results.json')
    _log_scalars(self.writer, step, 'val', {**_eval_scalars(val),
                                            'loss': val['loss']})
    criterion = (-val['loss'] if config.select_by == 'loss'
                 else val['score'])
    improved = criterion > float(state['best_val'])
    if improved:
      state['best_val'] = ckpt_lib.scalar(criterion)
      state['best_val_score'] = ckpt_lib.scalar(val['score'])
      state['best_val_loss'] = ckpt_lib.scalar(val['loss'])
      state['best_step'] = ckpt_lib.scalar(step, np.int64)
    entry = {'step': step, 'val_score': val['score'],
             'val_loss': val['loss'],
             'train_loss': loss if math.isfinite(loss) else None,
             'load': load}
    if 'solver' in val:
      entry['val_iterations_mean'] = val['solver']['iterations_mean']
    if config.test_every and step % config.test_every == 0:
      entry['test_scores'] = {
          str(n): evaluate(self.models, params,
                           load_eval_set(config, 'test', n),
                           batch_size=config.eval_batch_size,
                           seed=config.seed)['score']
          for n in config.test_sizes}
    self.history.append(entry)
    logging.info('validation at step %d: loss %.4f score %.4f%s (best by '
                 '%s at step %d: loss %.4f score %.4f)%s', step,
                 val['loss'], val['score'], ' *' if improved else '',
                 config.select_by, int(state['best_step']),
                 float(state['best_val_loss']),
                 float(state['best_val_score']),
                 ''.join(f', test n={n}: {v:.4f}' for n, v in
                         entry.get('test_scores', {}).items()))
    return improved


class _Window:
  """Steps per second between log lines."""

  def __init__(self, step: int):
    self.start, self.step = time.perf_counter(), step

  def log(self, writer, step: int, total: int, metrics: dict[str, float],
          eta: _Eta) -> None:
    """Logs the metrics read back after ``step`` steps (the device has
    finished them)."""
    now = time.perf_counter()
    eta.synced(step - self.step, now - self.start)
    rate = (step - self.step) / max(now - self.start, 1e-9)
    logging.info('step %d/%d  loss %.4f (mean %.4f)  %.2f steps/s  ETA %s',
                 step, total, metrics['loss'], metrics['loss_mean'], rate,
                 eta.text(step))
    writer.scalar('train/loss', metrics['loss'], step)
    writer.scalar('train/loss_mean', metrics['loss_mean'], step)
    writer.scalar('train/steps_per_second', rate, step)
    self.start, self.step = now, step


def _diverged(what: str,
              checkpointer: ckpt_lib.Checkpointer) -> DivergedError:
  """The error for a run that diverged (``what``: which steps, what is not
  finite), naming its newest checkpoint and what to change."""
  newest = checkpointer.latest_step()
  return DivergedError(
      f'training diverged: {what}; the newest checkpoint '
      f'({"none" if newest is None else newest}) holds finite parameters, '
      f'but resuming would repeat the same batches and diverge again, so '
      f'start a new workdir with a changed setting (a lower '
      f'--config.learning_rate, or for --model=dear '
      f'--config.deq.backward=phantom)')


def _check_finite_loss(loss_mean: float, since: int, step: int,
                       checkpointer: ckpt_lib.Checkpointer) -> None:
  """Stops training once the mean loss of steps ``since + 1 .. step`` is
  not finite (NaN or inf), before those parameters are checkpointed.

  Raises:
    DivergedError: naming the steps and the newest (finite) checkpoint.
  """
  if not math.isfinite(loss_mean):
    raise _diverged(
        f'the loss of a step in {since + 1}..{step} is {loss_mean} (not '
        f'finite), so the run stopped without results.json', checkpointer)


def _check_finite_params(params: Any, step: int,
                         checkpointer: ckpt_lib.Checkpointer) -> None:
  """Refuses to checkpoint parameters (host arrays) after ``step`` steps
  that hold a NaN or inf.

  Raises:
    DivergedError: naming the step and the newest (finite) checkpoint.
  """
  bad = [jax.tree_util.keystr(path)
         for path, leaf in jax.tree_util.tree_leaves_with_path(params)
         if not np.all(np.isfinite(leaf))]
  if bad:
    raise _diverged(
        f'after step {step}, {len(bad)} parameter arrays hold NaN or inf '
        f'(first: {bad[0]}), so they were not checkpointed', checkpointer)


def _save(checkpointer: ckpt_lib.Checkpointer, state: dict[str, Any],
          train_state: Any, best_params: Any, step: int,
          train_seconds: float) -> None:
  """Checkpoints the run after ``step`` steps (device arrays read back).

  Raises:
    DivergedError: the parameters are not finite (nothing is saved).
  """
  params = parallel.to_host(train_state.params)
  _check_finite_params(params, step, checkpointer)
  state.update(
      params=params,
      opt_state=parallel.to_host(train_state.opt_state),
      best_params=parallel.to_host(best_params),
      step=ckpt_lib.scalar(step, np.int64),
      train_seconds=ckpt_lib.scalar(train_seconds))
  checkpointer.save(step, state)


def _run_results(models: models_lib.Models,
                 config: ml_collections.ConfigDict, state: dict[str, Any],
                 history: History, segments: list[dict[str, Any]],
                 step: int, loss: float) -> dict[str, Any]:
  """The fields of ``results.json`` that the test sets do not give
  (``segments``: :func:`code_segments`)."""
  return {
      'algorithm': config.algorithm,
      'model': config.model,
      'processor': models_lib.processor_name(config),
      'seed': config.seed,
      'config': json.loads(config.to_json()),
      'select_by': config.select_by,
      # At the selected checkpoint.
      'val_score': float(state['best_val_score']),
      'val_loss': float(state['best_val_loss']),
      'best_step': int(state['best_step']),
      'history': history.entries,
      'train_steps': step,
      'final_train_loss': _final_train_loss(loss, step, history),
      # Wall time of the training loop (validation included), summed over
      # resumed segments, as of the last checkpoint (= the last step).
      'train_seconds': float(state['train_seconds']),
      'num_devices': models.num_devices,
      'num_processes': jax.process_count(),
      # The code that finished the run, and the code of each training
      # segment (a resumed run may have started on another commit).
      'code_version': provenance.code_version(),
      'code_versions': segments,
  }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       hooks: Sequence[Callable[[int], None]] = ()
                       ) -> dict[str, Any]:
  """Trains, validates, checkpoints and tests one model; resumable.

  Rerunning with the same config and workdir continues from the latest
  checkpoint and ends with the same parameters and scores as an
  uninterrupted run: batches, dropout-free noise keys and the best-so-far
  bookkeeping are all functions of ``(seed, step)`` or stored in the
  checkpoint. A finished run (its ``results.json`` has ``train_steps`` or
  more steps) is left alone: nothing is written and its results are
  returned; asking for more steps continues it.

  Args:
    config: see ``experiments/configs/default.py``.
    workdir: where ``config.json``, ``checkpoints/``, ``tensorboard/`` and
      ``results.json`` go.
    hooks: called with the number of finished steps after each step (and
      after that step's checkpoint, if any).

  Returns:
    The contents of ``results.json``.

  Raises:
    ValueError: a config that cannot run. UserError (a ValueError): a config
      that differs from the workdir's run or asks for fewer steps than its
      checkpoints have, or a workdir or data_dir that cannot be written.
      DivergedError (a UserError): a non-finite training loss or parameters.
      NonFiniteLossError (a UserError): a NaN or inf validation or test loss
      (nothing is selected, checkpointed or written from it).
  """
  finished = _start_run(config, workdir)
  if finished is not None:
    return finished
  progress.enable_compilation_cache(config.compilation_cache_dir)
  with progress.Heartbeat() as heartbeat:
    return _train_and_test(config, workdir, hooks, heartbeat)


def _describe_batch(feedback: clrs.Feedback) -> str:
  """``'32 graphs of 12 nodes'`` (and the time steps where hints have
  more than one)."""
  steps = max(dp.data.shape[0] for dp in feedback.features.hints)
  return (f'{data_lib.num_graphs(feedback)} graphs of '
          f'{data_lib.num_nodes(feedback)} nodes'
          + (f', {steps} time steps' if steps > 1 else ''))


def _dispatch_step(models: models_lib.Models, train_state: Any,
                   key: jax.Array, batch: clrs.Feedback, step: int,
                   eta: _Eta, heartbeat: progress.Heartbeat) -> Any:
  """Dispatches training step ``step + 1`` on a cached batch and returns
  the new training state, not waited for: the host prepares the next batch
  while the devices train on this one. A step that compiles, and the
  steps before the ETA is known, are named to the heartbeat."""
  feedback, extras = models.train_inputs(batch)
  compiles = eta.start_step(feedback)
  if compiles:
    heartbeat.phase(f'step {step + 1}: compiling the training step for '
                    f'{_describe_batch(feedback)}')
  train_state = models.stepper.train_step(train_state, key, feedback,
                                          **extras)
  if compiles or not eta.timed:
    heartbeat.phase('training: the first steps (or the first after a '
                    'compile), not timed yet')
  elif heartbeat.current is not None:
    heartbeat.phase(None)
  return train_state


def _named(heartbeat: progress.Heartbeat, function: Callable[..., Any],
           what: str) -> Callable[..., Any]:
  """``function`` with its calls named ``what`` to the heartbeat."""
  def call(*args, **kwargs):
    heartbeat.phase(what)
    try:
      return function(*args, **kwargs)
    finally:
      heartbeat.phase(None)
  return call


def _train_and_test(config: ml_collections.ConfigDict, workdir: str,
                    hooks: Sequence[Callable[[int], None]],
                    heartbeat: progress.Heartbeat) -> dict[str, Any]:
  """:func:`train_and_evaluate` once the run may start: the loop, the test
  and ``results.json`` (``heartbeat`` names each slow phase)."""
  heartbeat.phase('loading or generating the datasets')
  stream = data_lib.TrainStream.load(
      config.algorithm, list(config.train_sizes),
      config.train_samples_per_size, config.batch_size, config.seed,
      data_dir=_data_dir(config), data_seed=config.data_seed,
      with_hints=models_lib.uses_hints(config),
      er_probs=tuple(config.er_probs), random_pos=config.random_pos)
  val_set = load_eval_set(config, 'val', config.val_size)
  heartbeat.phase('building the model (and restoring its checkpoint)')
  models = _build_models(config, val_set)
  checkpointer = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
  stepper = models.stepper
  # The checkpoint, on the host; the training state and the best
  # parameters live on the devices and come back only to be saved.
  state, train_state = _restore_training(models, checkpointer, config)
  best_params = stepper.replicate(state['best_params'])
  writer = _summary_writer(workdir, config.tensorboard)
  train_key = stepper.replicate(jax.random.PRNGKey(config.seed))

  step = int(state['step'])
  history = History(workdir, step)
  validate = _Validation(models, config, val_set, writer, history)
  validate = _named(heartbeat, validate,
                    f'validating ({_describe_batch(val_set)}; the first '
                    f'validation compiles)')
  loss = float('nan')

  segments = code_segments(workdir, step,
                           training=step < config.train_steps)
  if step < config.train_steps:
    _log_compiling(config, stream, step)
  if step == 0:
    # The untrained parameters are the first candidate.
    validate(state, train_state.params, step, loss)
  window = _Window(step)
  # Training seconds of earlier segments, less this segment's start.
  seconds_offset = float(state['train_seconds']) - time.perf_counter()
  eta = _Eta(config.train_steps, validated=step == 0)
  while step < config.train_steps:
    train_state = _dispatch_step(models, train_state, train_key,
                                 stream.batch(step), step, eta, heartbeat)
    step += 1
    last = step == config.train_steps
    if step % config.log_every == 0 or last:
      # The mean is over the steps since the last log line.
      train_state, metrics = stepper.read_metrics(train_state)
      loss = metrics['loss']
      _check_finite_loss(metrics['loss_mean'], window.step, step,
                         checkpointer)
      window.log(writer, step, config.train_steps, metrics, eta)
      heartbeat.beat()
    if step % config.eval_every == 0 or last:
      if not step % config.log_every == 0 and not last:
        loss = float(parallel.to_host(train_state.loss))
      if validate(state, train_state.params, step, loss):
        best_params = stepper.copy(train_state.params)
      eta.validated()
    if step % config.checkpoint_every == 0 or last:
      _save(checkpointer, state, train_state, best_params, step,
            seconds_offset + time.perf_counter())
    for hook in hooks:
      hook(step)
  checkpointer.close()

  # Score the parameters selected on the validation set.
  results = _run_results(models, config, state, history, segments, step,
                         loss)
  heartbeat.phase(f'testing the parameters of step {int(state["best_step"])} '
                  f'at {", ".join(map(str, config.test_sizes))} nodes (each '
                  f'size compiles once)')
  results.update(_test_results(models, best_params, config,
                               list(config.test_sizes), writer, step,
                               results['best_step']))
  heartbeat.phase(None)
  writer.flush()
  return _write_results(results, config, workdir, checkpointer)


def _write_results(results: dict[str, Any], config: ml_collections.ConfigDict,
                   workdir: str, checkpointer: ckpt_lib.Checkpointer
                   ) -> dict[str, Any]:
  """Writes a finished run's ``results.json``, says where everything is
  and returns ``results``."""
  _write_json(results, os.path.join(workdir, 'results.json'))
  logging.info(
      'finished: scores in %s (score = CLRS\'s mean of per-output scores, in '
      '[0, 1], of the parameters selected by validation %s at step %d); '
      'checkpoints in %s%s', os.path.join(workdir, 'results.json'),
      config.select_by, results['best_step'], checkpointer.directory,
      f', TensorBoard logs in {os.path.join(workdir, "tensorboard")}'
      if config.tensorboard else '')
  return results


def _build_models(config: ml_collections.ConfigDict,
                  val_set: clrs.Feedback,
                  lt_read_at: str = 'stop') -> models_lib.Models:
  """The config's models (shapes from one validation graph), with the
  alignment teacher's parameters when the config asks for them."""
  dummy = data_lib.subsample(val_set, np.arange(1))
  teacher = load_teacher(config, dummy) if models_lib.aligned(config) else None
  return models_lib.build_models(config, dummy, teacher, lt_read_at)


def load_teacher(config: ml_collections.ConfigDict,
                 dummy: clrs.Feedback) -> Any:
  """The alignment teacher's parameters: the best-by-validation parameters
  of the finished ``nar`` run in ``config.align.teacher`` (host arrays).

  Raises:
    UserError: the teacher workdir is not a fitting ``nar`` run (another
      algorithm, hidden size or cell), has not finished, or has no readable
      checkpoint.
  """
  workdir = os.path.expanduser(config.align.teacher)
  teacher = run_config.with_added_settings(
      ml_collections.ConfigDict(_saved_config(workdir)))
  try:
    models_lib.check_teacher(config, teacher)
  except ValueError as error:
    raise UserError(str(error)) from error
  if not os.path.exists(os.path.join(workdir, 'results.json')):
    # A teacher still training would change between a run and its resume.
    raise UserError(f'align.teacher={workdir} has not finished (no '
                    f'results.json): finish training it first, so that '
                    f'every resume of this run aligns to the same teacher')
  teacher.num_devices = config.num_devices
  models = models_lib.build_models(teacher, dummy)
  try:
    state = _restore_for_evaluation(models, workdir, teacher, None)
  except UserError as error:
    raise UserError(f'align.teacher={workdir}: {error} (train the nar run '
                    f'first)') from error
  logging.info('alignment teacher: %s (parameters of step %d)', workdir,
               int(state['best_step']))
  return state['best_params']


def _saved_config(workdir: str) -> dict[str, Any]:
  """A training run's ``config.json``, or a :class:`UserError` saying why
  ``workdir`` is not one."""
  if not os.path.isdir(workdir):
    raise UserError(f'--workdir={workdir} does not exist: give the workdir '
                    f'of a training run (python -m experiments.train)')
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise UserError(f'{workdir} holds no config.json: not the workdir of a '
                    f'training run (python -m experiments.train)')
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as error:
    raise UserError(f'cannot read {path} ({error})') from error


def _override_solver(config: ml_collections.ConfigDict,
                     overrides: dict[str, Any]) -> None:
  """Sets equilibrium-solver settings of a DEAR run's config, or refuses."""
  if not models_lib.is_equilibrium(config):
    raise ValueError(f'solver settings {sorted(overrides)} only apply to '
                     f'--model=dear runs, not {config.model!r}')
  unknown = sorted(set(overrides) - set(config.deq))
  if unknown:
    raise ValueError(f'unknown solver settings {unknown}; valid: '
                     f'{sorted(config.deq)}')
  for key, value in overrides.items():
    config.deq[key] = value


def _set_for_evaluation(config: ml_collections.ConfigDict,
                        test_sizes: Sequence[int] | None,
                        data_dir: str | None,
                        solver_overrides: dict[str, Any] | None,
                        eval_batch_size: int | None,
                        eval_sets: str | None = None) -> None:
  """A run's config as :func:`evaluate_checkpoint` scores it (in place):
  its arguments that were given replace the run's values; checked."""
  if eval_sets is not None:
    config.eval_sets = eval_sets
  if test_sizes:
    config.test_sizes = tuple(int(n) for n in test_sizes)
  if solver_overrides:
    _override_solver(config, solver_overrides)
  if eval_batch_size is not None:
    config.eval_batch_size = int(eval_batch_size)
  if data_dir:
    config.data_dir = data_dir
  # A training-loss term: scoring needs neither it nor its teacher.
  config.align.weight = 0.0
  models_lib.check_config(config)


def _restore_for_evaluation(models: models_lib.Models, workdir: str,
                            config: ml_collections.ConfigDict,
                            step: int | None) -> dict[str, Any]:
  """Checkpoint ``step`` (default: the newest readable one), read-only."""
  checkpointer = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
  try:
    if step is None:
      state, _ = checkpointer.restore_newest_readable(
          _initial_state(models), set_aside=False)
      if state is None:
        raise UserError(f'no checkpoint under {checkpointer.directory} can '
                        f'be read (see the warnings above)')
      return state
    try:
      return checkpointer.restore(_initial_state(models), step)
    except Exception as error:  # pylint: disable=broad-except
      raise UserError(
          f'checkpoint {checkpointer.step_directory(step)} is unreadable '
          f'({type(error).__name__}: {ckpt_lib.first_line(error)})'
      ) from error
  finally:
    checkpointer.close()


def evaluate_checkpoint(workdir: str, test_sizes: Sequence[int] | None = None,
                        *, data_dir: str | None = None,
                        which: str = 'best', step: int | None = None,
                        output: str | None = None,
                        solver_overrides: dict[str, Any] | None = None,
                        eval_batch_size: int | None = None,
                        read_at: str = 'stop',
                        eval_sets: str | None = None) -> dict[str, Any]:
  """Scores a saved checkpoint on chosen test sizes, without training.

  Args:
    workdir: a run's workdir (holds ``config.json`` and ``checkpoints/``).
    test_sizes: graph sizes to score (default: the run's).
    data_dir: dataset cache (default: the run's).
    which: ``'best'`` (best-by-validation parameters) or ``'last'``.
    step: checkpoint step (default: the latest).
    output: where to write the JSON (default ``<workdir>/eval_results.json``).
    solver_overrides: equilibrium-solver settings for this evaluation only,
      e.g. ``{'rel_tol': 0.3}`` to trade accuracy for speed (``dear`` only).
    eval_batch_size: graphs per evaluation call (default: the run's). Fewer
      use less memory; a deterministic model scores the same, ``dear`` up to
      its evaluation noise, which is drawn per batch.
    read_at: ``nar_lt`` runs only: ``'stop'`` (the model's score) or
      ``'true_length'``, a diagnostic that reads the predictions at the true
      number of steps (the stopping statistics stay those of the model).
    eval_sets: ``'own'`` or ``'reference'`` (the authors' validation and
      test graphs, see :mod:`deq_clrs.training.reference_data`); default:
      the run's.

  Returns:
    ``{'algorithm', 'model', 'seed', 'checkpoint_step', 'params',
    'test_scores', 'test_scores_per_graph', 'gt_steps_mean',
    'seconds_per_sample', 'load', 'solver'}``, and
    ``'read_at'`` for a ``nar_lt`` run.

  Raises:
    UserError: ``workdir`` is not a training run's, or has no (readable)
      checkpoint (at ``step``). NonFiniteLossError (a UserError): a NaN or
      inf test loss (nothing is written).
  """
  if which not in ('best', 'last'):
    raise ValueError(f"which must be 'best' or 'last', got {which!r}")
  config = run_config.with_added_settings(
      ml_collections.ConfigDict(_saved_config(workdir)))
  models_lib.check_lt_read_at(read_at, config.model)  # Before any work.
  steps = ckpt_lib.saved_steps(workdir)
  if not steps:
    raise UserError(
        f'{workdir} has no checkpoint yet: train first (python -m '
        f'experiments.train --workdir={workdir} ...; the first checkpoint '
        f'comes after checkpoint_every={config.checkpoint_every} steps)')
  if step is not None and step not in steps:
    raise UserError(f'{workdir} has no checkpoint at step {step}; its '
                    f'checkpoints: {steps}')
  output = output or os.path.join(workdir, 'eval_results.json')
  try:  # Before scoring, so that the scores are not lost at the end.
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  except OSError as error:
    reason = error.strerror or error
    raise UserError(f'cannot write --output={output} ({reason})') from error
  _set_for_evaluation(config, test_sizes, data_dir, solver_overrides,
                      eval_batch_size, eval_sets)
  val_set = load_eval_set(config, 'val', config.val_size)
  models = _build_models(config, val_set, lt_read_at=read_at)
  state = _restore_for_evaluation(models, workdir, config, step)
  params = state['best_params' if which == 'best' else 'params']
  writer = _summary_writer(workdir, config.get('tensorboard', True))
  results = {
      'algorithm': config.algorithm, 'model': config.model,
      'seed': config.seed, 'checkpoint_step': int(state['step']),
      'solver_overrides': dict(solver_overrides or {}),
      'eval_batch_size': int(config.eval_batch_size),
      'eval_sets': config.eval_sets, 'tag': config.tag,
      'params': which, 'params_step': int(
          state['best_step'] if which == 'best' else state['step']),
      'code_version': provenance.code_version(),
  }
  if config.model == 'nar_lt':
    results['read_at'] = read_at
  progress.enable_compilation_cache(config.compilation_cache_dir)
  with progress.Heartbeat() as heartbeat:
    heartbeat.phase(f'testing at {", ".join(map(str, config.test_sizes))} '
                    f'nodes (each size compiles once)')
    results.update(_test_results(models, params, config,
                                 list(config.test_sizes), writer,
                                 int(state['step']), results['params_step']))
  writer.flush()
  _write_json(results, output)
  logging.info('wrote %s (scores of the %s parameters, from step %d, of '
               'checkpoint %d; score = CLRS\'s mean of per-output scores, in '
               '[0, 1])', output, which, results['params_step'],
               results['checkpoint_step'])
  if read_at == 'true_length':
    logging.info('predictions read at the true number of steps: a '
                 'diagnostic, not the nar_lt score (that is --read_at=stop)')
  return results
