"""Resumable checkpoints with orbax (atomic: orbax commits a step directory
only once every file is written).

A checkpoint is one pytree; a training run's is the dict of
:meth:`deq_clrs.training.run_state.RunState.to_checkpoint` (its layout is
described there). Restoring needs a template of the same structure (the
freshly initialised model gives it), so optax's named-tuple states come
back as they were saved; without one, nested dicts and lists come back.

A checkpoint that cannot be read (a file truncated or lost after it was
committed) is not fatal: :meth:`Checkpointer.restore_newest_readable` moves
it aside into ``<workdir>/checkpoints_unreadable/`` and tries the next older
one, in one warning line (a failed restore waits for its other reads, which
would otherwise print dozens of tracebacks: see :func:`_settled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from deq_clrs.training.errors import UserError

try:  # private: see _SettlingRunSync; another orbax layout only costs noise
  from orbax.checkpoint._src import asyncio_utils as ocp_asyncio
except ImportError:  # pragma: no cover
  ocp_asyncio = None

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
    with _reads_settle_before_failing():
      return self._manager.restore(step,
                                   args=ocp.args.StandardRestore(template))

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


async def _settled(coro):
  """Awaits ``coro``; if it raises, first lets the loop's other tasks end.

  Orbax reads a checkpoint's arrays as concurrent tasks (``asyncio.gather``)
  on a fresh event loop, which its ``run_sync`` closes as soon as the gather
  raises, without waiting for (or cancelling) the other reads. Those finish
  in TensorStore's threads and post their results to the closed loop, and
  each post prints a ``RuntimeError: Event loop is closed`` traceback (via
  ``sys.unraisablehook``): dozens for one damaged checkpoint, around the one
  warning that matters. Waiting for them (as a successful restore would
  have) before raising keeps the loop open for every post. The error raised
  is unchanged; the other reads' errors are the same damage again.
  """
  try:
    return await coro
  except Exception:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    if others:
      await asyncio.gather(*others, return_exceptions=True)
    raise


class _SettlingRunSync:
  """Within: orbax's ``run_sync`` runs its coroutine through :func:`_settled`.

  Orbax's handlers look ``asyncio_utils.run_sync`` up at each call, so
  replacing the module attribute reaches all of them; the original is put
  back when the last restore (of any thread) ends. Only a restore that fails
  behaves differently. With an orbax that has no such function, nothing is
  replaced (and a failed restore is noisy again).
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._depth = 0
    self._original = None

  def _run_sync(self, coro):
    return self._original(_settled(coro))

  @contextlib.contextmanager
  def __call__(self):
    if not hasattr(ocp_asyncio, 'run_sync'):
      yield
      return
    with self._lock:
      if self._depth == 0:
        self._original = ocp_asyncio.run_sync
        ocp_asyncio.run_sync = self._run_sync
      self._depth += 1
    try:
      yield
    finally:
      with self._lock:
        self._depth -= 1
        if self._depth == 0:
          ocp_asyncio.run_sync = self._original


_reads_settle_before_failing = _SettlingRunSync()


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
