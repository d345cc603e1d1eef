"""A run's working directory: when a run may start or resume there, and the
records it keeps beside its checkpoints.

:func:`start_run` checks a config against the workdir's run (only
:data:`RESUMABLE_CHANGES` may differ), leaves a finished run alone and
writes ``config.json``; :class:`History` is the learning curve
(``history.jsonl``) and :func:`code_segments` which code trained which steps
(``segments.jsonl``), both cut back to the checkpoint a run resumes from.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
from absl import logging

from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import models as models_lib
from deq_clrs.training import preflight
from deq_clrs.training import provenance
from deq_clrs.training import run_config
from deq_clrs.training.errors import UserError

# Settings a rerun in the same workdir may change; anything else must match
# the run being resumed.
RESUMABLE_CHANGES = frozenset({'train_steps', 'test_sizes', 'data_dir',
                               'log_every', 'compilation_cache_dir',
                               'prefetch_batches'})


def write_json(obj: Any, path: str) -> None:
  """Writes JSON atomically, from process 0 only (multi-host runs)."""
  if jax.process_index() != 0:
    return
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def saved_config(workdir: str) -> dict[str, Any]:
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


def start_run(config: ml_collections.ConfigDict,
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
  write_json(json.loads(config.to_json()),
             os.path.join(workdir, 'config.json'))
  return None


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
