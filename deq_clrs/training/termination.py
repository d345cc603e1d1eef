"""``nar_lt``: NAR with learned termination, all of it.

The network is the step-by-step NAR's, with one decoded graph-level hint,
``lt_continue`` (1 while the algorithm goes on, 0 at its last step), as the
termination target: it is trained on the true number of steps, and at test
time run for up to ``nar_lt.cap_per_node * N`` steps, each graph's outputs
read at the first step whose predicted probability of going on is below
0.5. It is never told the number of steps when it is scored.

Here: the spec, the data, the cap and the test-time evaluation;
:mod:`~deq_clrs.training.models` picks them for a variant with
``learned_termination`` (:mod:`~deq_clrs.training.variants`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import clrs
import jax
import ml_collections
import numpy as np

from deq_clrs.training import data as data_lib
from deq_clrs.training import step as step_lib
from deq_clrs.training import variants

LT_HINT = 'lt_continue'
LT_SPEC = (clrs.Stage.HINT, clrs.Location.GRAPH, clrs.Type.MASK)
# Where predictions are read at test time: at the step where the model stops
# (its score), or at the true number of steps (a diagnostic that tells the
# stopping rule's effect apart from the network's).
LT_READ_AT = ('stop', 'true_length')


def termination_spec(spec: clrs.Spec) -> clrs.Spec:
  """``spec`` without its hints and with ``lt_continue``: the termination
  hint is the only one the model decodes."""
  spec = {name: entry for name, entry in spec.items()
          if entry[0] != clrs.Stage.HINT}
  spec[LT_HINT] = LT_SPEC
  return spec


def termination_feedback(feedback: clrs.Feedback,
                         steps: int | None = None) -> clrs.Feedback:
  """nar_lt's data: the only hint is ``lt_continue`` over ``steps`` time steps.

  ``lt_continue[t, b] = 1`` while ``t < lengths[b] - 1`` and 0 after, so the
  prediction made after processor step ``i`` (compared by CLRS with time
  step ``i + 1``) says whether the algorithm goes on after it; CLRS masks
  steps past each graph's length.

  Args:
    feedback: a dataset or batch (its hints give the default ``steps``).
    steps: time steps T of the hint (default: those of the data).
  """
  lengths = np.asarray(feedback.features.lengths)
  if steps is None:
    steps = max(dp.data.shape[0] for dp in feedback.features.hints)
  t = np.arange(steps)[:, None]
  data = (t < lengths[None, :] - 1).astype(np.float32)
  hint = clrs.DataPoint(LT_HINT, LT_SPEC[1], LT_SPEC[2], data)
  features = clrs.Features(inputs=feedback.features.inputs, hints=(hint,),
                           lengths=lengths)
  return clrs.Feedback(features=features, outputs=feedback.outputs)


def lt_step_cap(config: ml_collections.ConfigDict, nb_nodes: int) -> int:
  """nar_lt's test-time cap on processor steps for graphs of N nodes."""
  return max(1, math.ceil(config.nar_lt.cap_per_node * nb_nodes))


def check_lt_read_at(read_at: str, model: str) -> None:
  """Refuses a read point that is not one of :data:`LT_READ_AT`, or a read
  other than at the stop for a model without learned termination."""
  if read_at not in LT_READ_AT:
    raise ValueError(f'read_at must be one of {LT_READ_AT}, got {read_at!r}')
  variant = variants.VARIANTS.get(model)
  if read_at != 'stop' and not (variant and variant.learned_termination):
    raise ValueError(f'read_at={read_at!r} is for nar_lt runs only; this is '
                     f'a {model!r} run')


Evaluate = Callable[[Any, jax.Array, clrs.Feedback, bool],
                    tuple[dict[str, clrs.DataPoint], dict[str, np.ndarray],
                          jax.Array | None]]


def lt_evaluate(stepper: step_lib.Stepper, config: ml_collections.ConfigDict,
                read_at: str = 'stop') -> Evaluate:
  """nar_lt's test-time prediction: run to the cap, read at the stop step.

  Returns:
    ``(params, key, cached Feedback, with_loss) -> (preds, stats, loss)``.
    The stats are the processor steps taken per graph (``iterations``) and
    whether the graph stopped by itself before the cap (``converged``). The
    true lengths never reach the network; with ``with_loss`` the same pass
    runs on past the cap to the longest trajectory, if that is longer, and
    the task loss is read at the true lengths (else the loss is None).
    ``read_at='true_length'`` reads the predictions there too (a
    diagnostic, not nar_lt's score).
  """
  at_true_length = read_at == 'true_length'

  def evaluate(params, key, feedback, with_loss=False):
    cap = lt_step_cap(config, data_lib.num_nodes(feedback))
    steps = cap + 1
    if with_loss or at_true_length:
      steps = max(steps, max(dp.data.shape[0]
                             for dp in feedback.features.hints))
    fb = termination_feedback(feedback, steps=steps)
    preds, stop, stopped, loss = stepper.evaluate_to_stop(
        params, key, fb, hint=LT_HINT, cap=cap, with_loss=with_loss,
        at_true_length=at_true_length)
    stats = {'iterations': stop + 1, 'converged': stopped}
    return preds, stats, loss if with_loss else None
  return evaluate
