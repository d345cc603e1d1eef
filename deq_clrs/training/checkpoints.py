"""Resumable checkpoints with orbax (atomic: orbax commits a step directory
only once every file is written).

A checkpoint is one pytree::

    {'params', 'opt_state',            # the training model
     'best_params',                    # best by validation score so far
     'step', 'best_step', 'best_val', 'train_seconds'}   # 0-d arrays

Restoring needs a template of the same structure (the freshly initialised
model gives it), so optax's named-tuple states come back as they were saved.

A checkpoint that cannot be read (a file truncated or lost after it was
committed) is not fatal: :meth:`Checkpointer.restore_newest_readable` moves
it aside into ``<workdir>/checkpoints_unreadable/`` and tries the next older
one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from deq_clrs.training.errors import UserError

UNREADABLE_DIR = 'checkpoints_unreadable'


class CheckpointMismatchError(UserError):
  """A readable checkpoint whose structure differs from the model's."""


class Checkpointer:
  """Saves and restores training state under ``<workdir>/checkpoints``."""

  def __init__(self, workdir: str, max_to_keep: int = 2):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, 'checkpoints')
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                           create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Committed checkpoint steps, oldest first."""
    return sorted(self._manager.all_steps())

  def step_directory(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: dict[str, Any]) -> None:
    """Writes ``state`` as checkpoint ``step`` and waits until committed."""
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()

  def restore(self, template: dict[str, Any] | None,
              step: int | None = None) -> dict[str, Any]:
    """Restores checkpoint ``step`` (default: latest).

    With a ``template`` the result has its structure (named tuples
    included); with ``None``, nested dicts and lists of numpy arrays.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint under {self.directory}')
    return self._manager.restore(step, args=ocp.args.StandardRestore(template))

  def restore_newest_readable(self, template: dict[str, Any] | None, *,
                              set_aside: bool = True
                              ) -> tuple[dict[str, Any] | None, int | None]:
    """Restores the newest checkpoint that can be read.

    Each newer checkpoint that cannot be read is named in a warning and
    (with ``set_aside``) moved into ``<workdir>/checkpoints_unreadable/``:
    kept for inspection, and out of the way of the steps a resumed run
    saves again.

    Args:
      template: as for :meth:`restore`.
      set_aside: move unreadable checkpoints (a run about to resume does;
        a read-only evaluation only skips them).

    Returns:
      ``(state, step)``, or ``(None, None)`` when no checkpoint is readable
      (or there is none).

    Raises:
      CheckpointMismatchError: a checkpoint reads without a template but
        does not fit ``template`` (the model changed, not the file).
    """
    for step in reversed(self.all_steps()):
      try:
        return self.restore(template, step), step
      except Exception as error:  # pylint: disable=broad-except
        # Orbax and TensorStore raise many types (ValueError, OSError,
        # JSONDecodeError, ...) for a damaged file.
        if template is not None and self._readable(step):
          raise CheckpointMismatchError(
              f'checkpoint {self.step_directory(step)} does not fit the model '
              f'built from config.json (was the code changed?): '
              f'{first_line(error)}') from error
        if set_aside:
          self._set_aside(step, error)
        else:
          logging.warning('checkpoint %s is unreadable (%s: %s); trying the '
                          'previous one', self.step_directory(step),
                          type(error).__name__, first_line(error))
    return None, None

  def _readable(self, step: int) -> bool:
    try:
      self.restore(None, step)
    except Exception:  # pylint: disable=broad-except
      return False
    return True

  def _set_aside(self, step: int, error: Exception) -> None:
    source = self.step_directory(step)
    target = os.path.join(self.workdir, UNREADABLE_DIR, str(step))
    suffix = 1
    while os.path.exists(target):
      target = os.path.join(self.workdir, UNREADABLE_DIR, f'{step}.{suffix}')
      suffix += 1
    logging.warning('checkpoint %s is unreadable (%s: %s); moved it to %s '
                    'and trying the previous one', source,
                    type(error).__name__, first_line(error), target)
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      os.replace(source, target)
    self._manager.reload()

  def close(self) -> None:
    self._manager.close()


def saved_steps(workdir: str) -> list[int]:
  """Steps of the committed checkpoints under ``<workdir>/checkpoints``,
  oldest first, read from the folder names (orbax writes into a temporary
  name and renames it on commit)."""
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory)
                if name.isdigit()
                and os.path.isdir(os.path.join(directory, name)))


def first_line(error: Exception, width: int = 200) -> str:
  text = str(error).strip().splitlines()
  return text[0][:width] if text else ''


def scalar(value, dtype=np.float64) -> np.ndarray:
  """A 0-d array, the form scalars take inside a checkpoint."""
  return np.asarray(value, dtype=dtype)
