"""Resumable checkpoints with orbax (atomic: orbax commits a step directory
only once every file is written).

A checkpoint is one pytree::

    {'params', 'opt_state',            # the training model
     'best_params',                    # best by validation score so far
     'step', 'best_step', 'best_val', 'train_seconds'}   # 0-d arrays

Restoring needs a template of the same structure (the freshly initialised
model gives it), so optax's named-tuple states come back as they were saved.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores training state under ``<workdir>/checkpoints``."""

  def __init__(self, workdir: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                           create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

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

  def close(self) -> None:
    self._manager.close()


def scalar(value, dtype=np.float64) -> np.ndarray:
  """A 0-d array, the form scalars take inside a checkpoint."""
  return np.asarray(value, dtype=dtype)
