"""A training run's state: what the loop updates and a checkpoint holds.

:class:`RunState` is one pytree: the training state, the best parameters
by validation so far and the selection's scalars. The training loop keeps
one (its arrays on the devices), validation updates its best entries,
:func:`save` writes it as a checkpoint and :func:`restore` (or
:func:`restore_newest_readable`) reads one back (its arrays on the host;
:meth:`RunState.on_devices` places it for training).

On disk a checkpoint is the flat dict of :meth:`RunState.to_checkpoint`,
the layout every checkpoint so far was written in (and that
``gradient_run`` and ``carry_runs`` read)::

    {'params', 'opt_state',            # the training model
     'best_params',                    # best by validation so far
     'step', 'best_step',              # int64 []
     'best_val', 'best_val_score', 'best_val_loss', 'train_seconds'}
                                       # float64 []

Restoring needs a template of the same structure (:func:`initial` of the
freshly built model gives it), so optax's named-tuple states come back as
they were saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import numpy as np

from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import models as models_lib
from deq_clrs.training import parallel
from deq_clrs.training import step as step_lib

#: The keys of a checkpoint (see the module docstring).
CHECKPOINT_KEYS = ('params', 'opt_state', 'best_params', 'step', 'best_step',
                   'best_val', 'best_val_score', 'best_val_loss',
                   'train_seconds')


@flax.struct.dataclass
class RunState:
  """A run after ``step`` training steps (a pytree; ``replace`` updates it).

  Attributes:
    train: the :class:`~deq_clrs.training.step.TrainState` the steps read
      and write: Haiku ``params``, optax ``opt_state`` (both saved), and
      the device-side counters (``step`` int32 ``[]``) and running loss
      metrics (``loss``, ``loss_sum`` float32 ``[]``, ``loss_steps`` int32
      ``[]``), which are not saved: a restored state has them afresh, as
      the log window of a resumed run starts afresh.
    best_params: the parameters selected by validation so far (the
      ``params`` tree's structure, shapes and dtypes); a copy, never the
      buffers of ``train``, which a step donates.
    step: int64 ``[]``, the training steps finished.
    best_step: int64 ``[]``, the step of ``best_params``.
    best_val: float64 ``[]``, the selection criterion there (higher is
      better: the validation score, or minus the validation loss); -inf
      before the first validation.
    best_val_score: float64 ``[]``, the validation score there (-inf before
      the first validation).
    best_val_loss: float64 ``[]``, the validation loss there (inf before
      the first validation).
    train_seconds: float64 ``[]``, wall time of the training loop
      (validation included) summed over the run's segments, as of its last
      checkpoint.
  """
  train: step_lib.TrainState
  best_params: Any
  step: np.ndarray
  best_step: np.ndarray
  best_val: np.ndarray
  best_val_score: np.ndarray
  best_val_loss: np.ndarray
  train_seconds: np.ndarray

  def to_checkpoint(self) -> dict[str, Any]:
    """The checkpoint of this state: the flat dict of
    :data:`CHECKPOINT_KEYS`, its arrays fetched to the host."""
    host = parallel.to_host((self.train.params, self.train.opt_state,
                             self.best_params))
    return dict(zip(CHECKPOINT_KEYS, (
        *host, ckpt_lib.scalar(self.step, np.int64),
        ckpt_lib.scalar(self.best_step, np.int64),
        ckpt_lib.scalar(self.best_val), ckpt_lib.scalar(self.best_val_score),
        ckpt_lib.scalar(self.best_val_loss),
        ckpt_lib.scalar(self.train_seconds))))

  @classmethod
  def from_checkpoint(cls, tree: dict[str, Any]) -> RunState:
    """The state a checkpoint's dict (:data:`CHECKPOINT_KEYS`) holds, on
    the host.

    Raises:
      KeyError: ``tree`` lacks one of the keys.
    """
    step = ckpt_lib.scalar(tree['step'], np.int64)
    return cls(
        train=step_lib.host_train_state(tree['params'], tree['opt_state'],
                                        int(step)),
        best_params=tree['best_params'], step=step,
        best_step=ckpt_lib.scalar(tree['best_step'], np.int64),
        best_val=ckpt_lib.scalar(tree['best_val']),
        best_val_score=ckpt_lib.scalar(tree['best_val_score']),
        best_val_loss=ckpt_lib.scalar(tree['best_val_loss']),
        train_seconds=ckpt_lib.scalar(tree['train_seconds']))

  def on_devices(self, models: models_lib.Models) -> RunState:
    """This state with ``train`` and ``best_params`` replicated on the
    models' mesh (the scalars stay on the host)."""
    stepper = models.stepper
    return self.replace(train=stepper.replicate(self.train),
                        best_params=stepper.replicate(self.best_params))


def initial(models: models_lib.Models) -> RunState:
  """A fresh run's state, on the host: the models' initial training state,
  its parameters as the best so far, nothing validated yet. Its
  checkpoint is the template that checkpoints are restored into."""
  train = parallel.to_host(models.initial_state)
  return RunState(
      train=train, best_params=train.params,
      step=ckpt_lib.scalar(0, np.int64),
      best_step=ckpt_lib.scalar(0, np.int64),
      best_val=ckpt_lib.scalar(-np.inf),
      best_val_score=ckpt_lib.scalar(-np.inf),
      best_val_loss=ckpt_lib.scalar(np.inf),
      train_seconds=ckpt_lib.scalar(0.0))


def save(checkpointer: ckpt_lib.Checkpointer, state: RunState,
         check: Callable[[dict[str, Any]], None] | None = None) -> None:
  """Writes ``state`` as checkpoint ``state.step`` (waits until committed).

  Args:
    checkpointer: the run's checkpoints.
    state: what to save (host or device arrays).
    check: called with the checkpoint's dict (host arrays) before it is
      written; raising there writes nothing (e.g. non-finite parameters).
  """
  tree = state.to_checkpoint()
  if check is not None:
    check(tree)
  checkpointer.save(int(state.step), tree)


def restore(checkpointer: ckpt_lib.Checkpointer, models: models_lib.Models,
            step: int | None = None) -> RunState:
  """Checkpoint ``step`` (default: the latest) of a run of ``models``, on
  the host; errors as :meth:`~deq_clrs.training.checkpoints.Checkpointer.
  restore`."""
  template = initial(models).to_checkpoint()
  return RunState.from_checkpoint(checkpointer.restore(template, step))


def restore_newest_readable(checkpointer: ckpt_lib.Checkpointer,
                            models: models_lib.Models, *,
                            set_aside: bool = True) -> RunState | None:
  """The newest readable checkpoint of a run of ``models``, on the host, or
  ``None`` if none can be read; unreadable ones are handled as
  :meth:`~deq_clrs.training.checkpoints.Checkpointer.restore_newest_readable`
  handles them (and a mismatch raises its ``CheckpointMismatchError``)."""
  template = initial(models).to_checkpoint()
  tree, _ = checkpointer.restore_newest_readable(template,
                                                 set_aside=set_aside)
  return None if tree is None else RunState.from_checkpoint(tree)
