"""Reading a saved run: building its models, scoring a checkpoint
without training (:func:`evaluate_checkpoint`, ``experiments.evaluate``)
and the alignment teacher's parameters (:func:`load_teacher`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import clrs
import ml_collections
import numpy as np
from absl import logging

from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import data as data_lib
from deq_clrs.training import evaluation
from deq_clrs.training import models as models_lib
from deq_clrs.training import progress
from deq_clrs.training import provenance
from deq_clrs.training import run_config
from deq_clrs.training import run_state as run_state_lib
from deq_clrs.training import termination
from deq_clrs.training import variants
from deq_clrs.training import workdir as workdir_lib
from deq_clrs.training.errors import UserError


def build_models(config: ml_collections.ConfigDict,
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
      ml_collections.ConfigDict(workdir_lib.saved_config(workdir)))
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
               int(state.best_step))
  return state.best_params


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
                            step: int | None) -> run_state_lib.RunState:
  """Checkpoint ``step`` (default: the newest readable one), read-only, on
  the host."""
  checkpointer = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
  try:
    if step is None:
      state = run_state_lib.restore_newest_readable(checkpointer, models,
                                                    set_aside=False)
      if state is None:
        raise UserError(f'no checkpoint under {checkpointer.directory} can '
                        f'be read (see the warnings above)')
      return state
    try:
      return run_state_lib.restore(checkpointer, models, step)
    except Exception as error:  # pylint: disable=broad-except
      raise UserError(
          f'checkpoint {checkpointer.step_directory(step)} is unreadable '
          f'({type(error).__name__}: {ckpt_lib.first_line(error)})'
      ) from error
  finally:
    checkpointer.close()


def evaluate_checkpoint(workdir: str, test_sizes: Sequence[int] | None = None,
                        *, data_dir: str | None = None, which: str = 'best',
                        step: int | None = None, output: str | None = None,
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
  config = _saved_run_config(workdir, which, read_at, step)
  output = _writable_output(workdir, output)
  _set_for_evaluation(config, test_sizes, data_dir, solver_overrides,
                      eval_batch_size, eval_sets)
  val_set = evaluation.load_eval_set(config, 'val', config.val_size)
  models = build_models(config, val_set, lt_read_at=read_at)
  state = _restore_for_evaluation(models, workdir, config, step)
  params = state.best_params if which == 'best' else state.train.params
  writer = progress.summary_writer(workdir, config.get('tensorboard', True))
  results = _evaluation_header(config, state, which, solver_overrides, read_at)
  progress.enable_compilation_cache(config.compilation_cache_dir)
  sizes = ', '.join(map(str, config.test_sizes))
  with progress.Heartbeat() as heartbeat:
    heartbeat.phase(f'testing at {sizes} nodes (each size compiles once)')
    results.update(evaluation.test_results(
        models, params, config, list(config.test_sizes), writer,
        int(state.step), results['params_step']))
  writer.flush()
  workdir_lib.write_json(results, output)
  _log_written(results, output)
  return results


def _log_written(results: dict[str, Any], output: str) -> None:
  """Says where an evaluation's scores went and what they are."""
  logging.info('wrote %s (scores of the %s parameters, from step %d, of '
               'checkpoint %d; score = CLRS\'s mean of per-output scores, in '
               '[0, 1])', output, results['params'], results['params_step'],
               results['checkpoint_step'])
  if results.get('read_at') == 'true_length':
    logging.info('predictions read at the true number of steps: a '
                 'diagnostic, not the nar_lt score (that is --read_at=stop)')


def _saved_run_config(workdir: str, which: str, read_at: str,
                      step: int | None) -> ml_collections.ConfigDict:
  """The config of the run in ``workdir``, once the request to score its
  checkpoint (``which`` parameters, ``read_at``, ``step``) is known to be
  possible.

  Raises:
    ValueError: an unknown ``which`` or ``read_at``. UserError: not a
      training run's workdir, no checkpoint yet, or none at ``step``.
  """
  if which not in ('best', 'last'):
    raise ValueError(f"which must be 'best' or 'last', got {which!r}")
  config = run_config.with_added_settings(
      ml_collections.ConfigDict(workdir_lib.saved_config(workdir)))
  termination.check_lt_read_at(read_at, config.model)  # Before any work.
  steps = ckpt_lib.saved_steps(workdir)
  if not steps:
    raise UserError(
        f'{workdir} has no checkpoint yet: train first (python -m '
        f'experiments.train --workdir={workdir} ...; the first checkpoint '
        f'comes after checkpoint_every={config.checkpoint_every} steps)')
  if step is not None and step not in steps:
    raise UserError(f'{workdir} has no checkpoint at step {step}; its '
                    f'checkpoints: {steps}')
  return config


def _writable_output(workdir: str, output: str | None) -> str:
  """``output`` (default ``<workdir>/eval_results.json``), once its folder
  exists (made before scoring, so that the scores are not lost at the
  end), or a :class:`UserError`."""
  output = output or os.path.join(workdir, 'eval_results.json')
  try:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  except OSError as error:
    reason = error.strerror or error
    raise UserError(f'cannot write --output={output} ({reason})') from error
  return output


def _evaluation_header(config: ml_collections.ConfigDict,
                       state: run_state_lib.RunState, which: str,
                       solver_overrides: dict[str, Any] | None,
                       read_at: str) -> dict[str, Any]:
  """The fields of an evaluation's JSON that say what was scored."""
  results = {
      'algorithm': config.algorithm, 'model': config.model,
      'seed': config.seed, 'checkpoint_step': int(state.step),
      'solver_overrides': dict(solver_overrides or {}),
      'eval_batch_size': int(config.eval_batch_size),
      'eval_sets': config.eval_sets, 'tag': config.tag,
      'pointer_loss': config.pointer_loss, 'params': which, 'params_step': int(
          state.best_step if which == 'best' else state.step),
      'code_version': provenance.code_version(),
  }
  if variants.of(config).learned_termination:
    results['read_at'] = read_at
  return results
