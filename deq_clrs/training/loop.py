"""The training loop of DEAR and its NAR baselines on one algorithm.

:func:`train_and_evaluate` is the whole experiment: it loads (or makes and
caches) the datasets, builds the models, trains with periodic validation and
resumable checkpoints, scores the best-by-validation parameters on every
test size and writes ``results.json``, TensorBoard metrics and checkpoints
into the working directory. Its parts live beside it: scoring in
:mod:`~deq_clrs.training.evaluation`, the workdir's rules and records in
:mod:`~deq_clrs.training.workdir`, the run's state (what a checkpoint
holds) in :mod:`~deq_clrs.training.run_state`, building the models in
:mod:`~deq_clrs.training.saved_runs`, the log and its ETA in
:mod:`~deq_clrs.training.progress`.
"""

from __future__ import annotations

import dataclasses
import json
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
from deq_clrs.training import evaluation
from deq_clrs.training import models as models_lib
from deq_clrs.training import parallel
from deq_clrs.training import prefetch
from deq_clrs.training import progress
from deq_clrs.training import provenance
from deq_clrs.training import run_state as run_state_lib
from deq_clrs.training import saved_runs
from deq_clrs.training import workdir as workdir_lib
from deq_clrs.training.errors import DivergedError


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
  finished = workdir_lib.start_run(config, workdir)
  if finished is not None:
    return finished
  progress.enable_compilation_cache(config.compilation_cache_dir)
  with progress.Heartbeat() as heartbeat:
    return _train_and_test(config, workdir, hooks, heartbeat)


@dataclasses.dataclass
class _Run:
  """What the loop works with: the data, the models, the run's state
  (``state``: its training state and best parameters on the devices, which
  come back only to be saved) and the run's records."""
  stream: data_lib.TrainStream
  val_set: clrs.Feedback
  models: models_lib.Models
  checkpointer: ckpt_lib.Checkpointer
  state: run_state_lib.RunState
  writer: Any
  history: workdir_lib.History
  validate: Callable[..., run_state_lib.RunState]


def _open_run(config: ml_collections.ConfigDict, workdir: str,
              heartbeat: progress.Heartbeat) -> _Run:
  """Loads the data, builds the models and restores the newest checkpoint
  (or starts afresh)."""
  heartbeat.phase('loading or generating the datasets')
  stream = data_lib.TrainStream.load(
      config.algorithm, list(config.train_sizes),
      config.train_samples_per_size, config.batch_size, config.seed,
      data_dir=evaluation.data_dir(config), data_seed=config.data_seed,
      with_hints=models_lib.uses_hints(config),
      er_probs=tuple(config.er_probs), random_pos=config.random_pos)
  val_set = evaluation.load_eval_set(config, 'val', config.val_size)
  heartbeat.phase('building the model (and restoring its checkpoint)')
  models = saved_runs.build_models(config, val_set)
  checkpointer = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
  state = _restore_training(models, checkpointer, config)
  writer = progress.summary_writer(workdir, config.tensorboard)
  history = workdir_lib.History(workdir, int(state.step))
  validate = progress.named(
      heartbeat, _Validation(models, config, val_set, writer, history),
      f'validating ({_describe_batch(val_set)}; the first validation '
      f'compiles)')
  return _Run(stream, val_set, models, checkpointer, state, writer, history,
              validate)


def _train_and_test(config: ml_collections.ConfigDict, workdir: str,
                    hooks: Sequence[Callable[[int], None]],
                    heartbeat: progress.Heartbeat) -> dict[str, Any]:
  """:func:`train_and_evaluate` once the run may start: the loop, the test
  and ``results.json`` (``heartbeat`` names each slow phase)."""
  run = _open_run(config, workdir, heartbeat)
  step = int(run.state.step)
  segments = workdir_lib.code_segments(workdir, step,
                                       training=step < config.train_steps)
  step, loss = _train(config, run, hooks, heartbeat)
  run.checkpointer.close()

  # Score the parameters selected on the validation set.
  results = _run_results(run.models, config, run.state, run.history,
                         segments, step, loss)
  heartbeat.phase(f'testing the parameters of step '
                  f'{int(run.state.best_step)} at '
                  f'{", ".join(map(str, config.test_sizes))} nodes (each '
                  f'size compiles once)')
  results.update(evaluation.test_results(
      run.models, run.state.best_params, config, list(config.test_sizes),
      run.writer, step, results['best_step']))
  heartbeat.phase(None)
  run.writer.flush()
  return _write_results(results, config, workdir, run.checkpointer)


def _train(config: ml_collections.ConfigDict, run: _Run,
           hooks: Sequence[Callable[[int], None]],
           heartbeat: progress.Heartbeat) -> tuple[int, float]:
  """Trains from the restored step to ``config.train_steps``, logging,
  validating and checkpointing on schedule; returns the last step and its
  training loss (NaN if this invocation trained no step)."""
  stepper = run.models.stepper
  step, loss = int(run.state.step), float('nan')
  train_key = stepper.replicate(jax.random.PRNGKey(config.seed))
  if step < config.train_steps:
    _log_compiling(config, run.stream, step)
  if step == 0:
    # The untrained parameters are the first candidate.
    run.state = run.validate(run.state, loss)
  window = progress.Window(step)
  # Training seconds of earlier segments, less this segment's start.
  seconds_offset = float(run.state.train_seconds) - time.perf_counter()
  eta = progress.Eta(config.train_steps, validated=step == 0)
  with _batches(config, run) as batches:
    while step < config.train_steps:
      run.state = run.state.replace(
          train=_dispatch_step(run.models, run.state.train, train_key,
                               batches.get(step), step, eta, heartbeat),
          step=ckpt_lib.scalar(step + 1, np.int64))
      step += 1
      last = step == config.train_steps
      if step % config.log_every == 0 or last:
        # The mean is over the steps since the last log line.
        train, metrics = stepper.read_metrics(run.state.train)
        run.state = run.state.replace(train=train)
        loss = metrics['loss']
        _check_finite_loss(metrics['loss_mean'], window.step, step,
                           run.checkpointer)
        window.log(run.writer, step, config.train_steps, metrics, eta)
        heartbeat.beat()
      if step % config.eval_every == 0 or last:
        if not step % config.log_every == 0 and not last:
          loss = float(parallel.to_host(run.state.train.loss))
        run.state = run.validate(run.state, loss)
        eta.validated()
      if step % config.checkpoint_every == 0 or last:
        run.state = _save(run.checkpointer, run.state,
                          seconds_offset + time.perf_counter())
      for hook in hooks:
        hook(step)
  return step, loss


def _batches(config: ml_collections.ConfigDict, run: _Run
             ) -> prefetch.Prefetcher[tuple[clrs.Feedback, dict[str, Any]]]:
  """The training inputs of the steps left (the prepared batch, placed on
  the devices, and ``train_step``'s extra arguments), made
  ``config.prefetch_batches`` steps ahead on a background thread."""
  models, stream = run.models, run.stream

  def make(step: int) -> tuple[clrs.Feedback, dict[str, Any]]:
    feedback, extras = models.train_inputs(stream.batch(step))
    return models.stepper.place(feedback), extras

  return prefetch.Prefetcher(make, int(run.state.step), config.train_steps,
                             depth=config.prefetch_batches)


def _describe_batch(feedback: clrs.Feedback) -> str:
  """``'32 graphs of 12 nodes'`` (and the time steps where hints have
  more than one)."""
  steps = max(dp.data.shape[0] for dp in feedback.features.hints)
  return (f'{data_lib.num_graphs(feedback)} graphs of '
          f'{data_lib.num_nodes(feedback)} nodes'
          + (f', {steps} time steps' if steps > 1 else ''))


def _dispatch_step(models: models_lib.Models, train_state: Any,
                   key: jax.Array,
                   inputs: tuple[clrs.Feedback, dict[str, Any]], step: int,
                   eta: progress.Eta, heartbeat: progress.Heartbeat) -> Any:
  """Dispatches training step ``step + 1`` on its inputs (from
  :func:`_batches`) and returns the new training state, not waited for:
  the host prepares the next batches while the devices train on this one.
  A step that compiles, and the steps before the ETA is known, are named
  to the heartbeat."""
  feedback, extras = inputs
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
      '' if models_lib.is_equilibrium(config)
      else ', and each number of steps',
      config.val_samples, config.val_size, config.eval_batch_size)


def _restore_training(models: models_lib.Models,
                      checkpointer: ckpt_lib.Checkpointer,
                      config: ml_collections.ConfigDict
                      ) -> run_state_lib.RunState:
  """The run's state on the devices: from the newest readable checkpoint,
  or fresh."""
  if checkpointer.latest_step() is None:
    return run_state_lib.initial(models).on_devices(models)
  restored = run_state_lib.restore_newest_readable(checkpointer, models)
  if restored is None:
    logging.warning('no readable checkpoint under %s: starting afresh',
                    checkpointer.directory)
    return run_state_lib.initial(models).on_devices(models)
  logging.info('resumed from step %d of %d', int(restored.step),
               config.train_steps)
  return restored.on_devices(models)


class _Validation:
  """Scores parameters on the validation set (score and loss in one pass),
  keeps the best-so-far bookkeeping of the checkpoint state, the learning
  curve and the log."""

  def __init__(self, models: models_lib.Models,
               config: ml_collections.ConfigDict, val_set: clrs.Feedback,
               writer, history: workdir_lib.History):
    self.models, self.config, self.val_set = models, config, val_set
    self.writer, self.history = writer, history
    # Start of the interval whose sharing of the cores the next validation
    # records (this run's training since it started or resumed).
    self._since = provenance.cpu_times()

  def __call__(self, state: run_state_lib.RunState,
               loss: float) -> run_state_lib.RunState:
    """Validates ``state``'s training parameters after its ``state.step``
    steps (``loss``: the last training loss); returns ``state`` with its
    best entries (and a copy of these parameters as ``best_params``) if
    they are the new best, else ``state``.

    Raises:
      NonFiniteLossError: the validation loss is NaN or inf (before the
        state, the history or the log see it).
    """
    config, params, step = self.config, state.train.params, int(state.step)
    # The load of the training minute before this validation, and how much
    # of this run's CPUs other processes used since the previous one (the
    # report marks train s of runs that shared their cores:
    # experiments.report).
    load = provenance.machine_load(since=self._since)
    self._since = provenance.cpu_times()
    val = evaluation.evaluate(
        self.models, params, self.val_set, batch_size=config.eval_batch_size,
        seed=config.seed, with_loss=True)
    evaluation.check_finite_eval_loss(
        val['loss'], f'the validation loss at step {step}',
        evaluation.eval_set_path(config, 'val', config.val_size),
        'the run stopped before selecting or checkpointing these parameters, '
        'without results.json')
    progress.log_scalars(self.writer, step, 'val',
                         {**evaluation.eval_scalars(val), 'loss': val['loss']})
    criterion = (-val['loss'] if config.select_by == 'loss'
                 else val['score'])
    improved = criterion > float(state.best_val)
    if improved:
      state = state.replace(
          best_params=self.models.stepper.copy(params),
          best_val=ckpt_lib.scalar(criterion),
          best_val_score=ckpt_lib.scalar(val['score']),
          best_val_loss=ckpt_lib.scalar(val['loss']),
          best_step=ckpt_lib.scalar(step, np.int64))
    entry = {'step': step, 'val_score': val['score'],
             'val_loss': val['loss'],
             'train_loss': loss if math.isfinite(loss) else None,
             'load': load}
    if 'solver' in val:
      entry['val_iterations_mean'] = val['solver']['iterations_mean']
    if config.test_every and step % config.test_every == 0:
      entry['test_scores'] = {
          str(n): evaluation.evaluate(
              self.models, params, evaluation.load_eval_set(config, 'test', n),
              batch_size=config.eval_batch_size, seed=config.seed)['score']
          for n in config.test_sizes}
    self.history.append(entry)
    logging.info('validation at step %d: loss %.4f score %.4f%s (best by '
                 '%s at step %d: loss %.4f score %.4f)%s', step,
                 val['loss'], val['score'], ' *' if improved else '',
                 config.select_by, int(state.best_step),
                 float(state.best_val_loss), float(state.best_val_score),
                 ''.join(f', test n={n}: {v:.4f}' for n, v in
                         entry.get('test_scores', {}).items()))
    return state


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


def _save(checkpointer: ckpt_lib.Checkpointer, state: run_state_lib.RunState,
          train_seconds: float) -> run_state_lib.RunState:
  """Checkpoints the run after its ``state.step`` steps (device arrays read
  back) with ``train_seconds`` so far; returns the state saved.

  Raises:
    DivergedError: the parameters are not finite (nothing is saved).
  """
  state = state.replace(train_seconds=ckpt_lib.scalar(train_seconds))
  run_state_lib.save(checkpointer, state, check=lambda saved: (
      _check_finite_params(saved['params'], int(state.step), checkpointer)))
  return state


def _run_results(models: models_lib.Models,
                 config: ml_collections.ConfigDict,
                 state: run_state_lib.RunState,
                 history: workdir_lib.History, segments: list[dict[str, Any]],
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
      'val_score': float(state.best_val_score),
      'val_loss': float(state.best_val_loss),
      'best_step': int(state.best_step),
      'history': history.entries,
      'train_steps': step,
      'final_train_loss': _final_train_loss(loss, step, history),
      # Wall time of the training loop (validation included), summed over
      # resumed segments, as of the last checkpoint (= the last step).
      'train_seconds': float(state.train_seconds),
      'num_devices': models.num_devices,
      'num_processes': jax.process_count(),
      # The code that finished the run, and the code of each training
      # segment (a resumed run may have started on another commit).
      'code_version': provenance.code_version(),
      'code_versions': segments,
  }


def _final_train_loss(loss: float, step: int,
                      history: workdir_lib.History) -> float | None:
  """The last step's loss; from the learning curve if this invocation ran no
  step (killed after the last checkpoint, before ``results.json``)."""
  if math.isfinite(loss):
    return loss
  last = [e for e in history.entries if e['step'] == step]
  return last[-1].get('train_loss') if last else None


def _write_results(results: dict[str, Any], config: ml_collections.ConfigDict,
                   workdir: str, checkpointer: ckpt_lib.Checkpointer
                   ) -> dict[str, Any]:
  """Writes a finished run's ``results.json``, says where everything is
  and returns ``results``."""
  workdir_lib.write_json(results, os.path.join(workdir, 'results.json'))
  logging.info(
      'finished: scores in %s (score = CLRS\'s mean of per-output scores, in '
      '[0, 1], of the parameters selected by validation %s at step %d); '
      'checkpoints in %s%s', os.path.join(workdir, 'results.json'),
      config.select_by, results['best_step'], checkpointer.directory,
      f', TensorBoard logs in {os.path.join(workdir, "tensorboard")}'
      if config.tensorboard else '')
  return results
