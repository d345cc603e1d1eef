"""Scoring parameters on cached datasets: validation and test sets.

:func:`evaluate` scores parameters on a whole dataset (CLRS's score, the
loss, per-graph scores, solver statistics and timing); :func:`test_results`
gives the test fields of ``results.json`` for every test size;
:func:`load_eval_set` loads (or makes and caches) a config's validation or
test set, ours or the authors' (``config.eval_sets``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import clrs
import jax
import ml_collections
import numpy as np
from absl import logging

from deq_clrs.training import data as data_lib
from deq_clrs.training import models as models_lib
from deq_clrs.training import progress
from deq_clrs.training import provenance
from deq_clrs.training import reference_data
from deq_clrs.training.errors import NonFiniteLossError
from deq_clrs.training.errors import UserError


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


def _score_batches(models: models_lib.Models, params: Any, key: jax.Array,
                   chunks: list[clrs.Feedback], with_loss: bool,
                   batch_size: int, timed: bool) -> dict[str, Any]:
  """Runs the evaluation network over ``chunks``: the predictions and
  solver statistics of each batch, the loss summed over graphs (a device
  scalar, read by the caller) and the seconds and graphs of the calls that
  compiled nothing.

  The first batch of each shape compiles: only the others are timed, or,
  if every batch compiles (and ``timed``), a second run of the first one.
  """
  preds, stats, seconds, timed_graphs, shapes = [], [], 0.0, 0, set()
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
  return {'preds': preds, 'stats': stats, 'loss_sum': loss_sum,
          'seconds': seconds, 'timed_graphs': timed_graphs}


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
  since = provenance.cpu_times() if timed else None
  run = _score_batches(models, params, key, chunks, with_loss, batch_size,
                       timed)
  preds, stats = _concat(run['preds']), run['stats']
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
    result['loss'] = float(run['loss_sum']) / data_lib.num_graphs(dataset)
  if timed:
    result['seconds_per_sample'] = run['seconds'] / run['timed_graphs']
    # Right after the timing; others' use of this process's CPUs during it.
    result['load'] = provenance.machine_load(since=since)
  if stats:
    result['solver'] = summarize_stats(_concat(stats))
  return result


def data_dir(config: ml_collections.ConfigDict) -> str:
  return os.path.expanduser(config.data_dir)


def _eval_set_args(config: ml_collections.ConfigDict, split: str,
                   size: int) -> dict[str, Any]:
  samples = config.val_samples if split == 'val' else config.test_samples
  args = dict(algorithm=config.algorithm, split=split, size=size,
              num_samples=samples, data_dir=data_dir(config),
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


def check_finite_eval_loss(loss: float, what: str, path: str,
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


def eval_scalars(result: dict[str, Any]) -> dict[str, float]:
  values = {'score': result['score'], **result['outputs']}
  for k, v in result.get('solver', {}).items():
    values[f'solver_{k}'] = v
  if 'seconds_per_sample' in result:
    values['seconds_per_sample'] = result['seconds_per_sample']
  return values


def test_results(models: models_lib.Models, params: Any,
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
    check_finite_eval_loss(
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
    progress.log_scalars(writer, step, f'test_{size}',
                         {**eval_scalars(result), 'loss': result['loss']})
  if not out['solver']:
    out['solver'] = None  # The model runs the true number of steps.
  return out
