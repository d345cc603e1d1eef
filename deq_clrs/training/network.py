"""The network a training or evaluation step runs, on CLRS's public API.

The network is CLRS's public ``clrs.models.Net`` under ``hk.transform``,
built exactly as ``clrs.models.BaselineModel`` builds it (same Haiku module
name, so the same parameter tree: a ``BaselineModel``'s parameters load here
and back).

* :func:`build_network`: ``Net`` for one algorithm, with a given processor.
* :func:`processor_state`: the Haiku state an equilibrium or rollout
  processor writes (its solver statistics, samples, states).
* :class:`Alignment`: DEAR's alignment regulariser, which adds to the
  training loss the cost of matching the equilibrium solver's states to a
  frozen NAR's (:mod:`deq_clrs.alignment`), rolled out by a second network.

The jitted steps that run these networks are :mod:`deq_clrs.training.step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import clrs
import haiku as hk
import jax
import numpy as np

from deq_clrs import alignment as alignment_lib
from deq_clrs import cells as cells_lib
from deq_clrs import integration

# The Haiku name of CLRS's Net as BaselineModel creates it: parameters are
# named 'net/...'.
NET_NAME = 'net'

Params = Any  # hk.Params: {module name: {parameter name: array}}


def feature_dims(feedback: clrs.Feedback) -> dict[str, int]:
  """Last-axis size of every input, hint and output (``Net``'s nb_dims)."""
  dims = {}
  for dp in (tuple(feedback.features.inputs) + tuple(feedback.features.hints)
             + tuple(feedback.outputs)):
    dims[dp.name] = int(np.shape(dp.data)[-1])
  return dims


def build_network(spec: clrs.Spec, dummy: clrs.Feedback,
                  processor_factory: Callable[[int], Any], *,
                  hidden_dim: int, encode_hints: bool,
                  decode_hints: bool, with_state: bool = False
                  ) -> hk.Transformed | hk.TransformedWithState:
  """CLRS's ``Net`` for one algorithm, as ``BaselineModel`` configures it.

  Args:
    spec: the algorithm's CLRS spec.
    dummy: a batch of the data the network will see (gives feature sizes).
    processor_factory: ``out_size -> Processor``.
    hidden_dim: latent size H.
    encode_hints: feed hints to the processor.
    decode_hints: predict hints at each step.
    with_state: ``hk.transform_with_state`` instead, for processors that
      write Haiku state (the alignment regulariser's).

  Returns:
    ``hk.transform`` of ``(features_list, repred, algorithm_index,
    return_hints, return_all_outputs) -> (output logits, hint logits)``.
  """
  dims = feature_dims(dummy)

  def forward(features_list, repred, algorithm_index, return_hints,
              return_all_outputs):
    net = clrs.models.Net(
        spec=[spec], hidden_dim=hidden_dim, encode_hints=encode_hints,
        decode_hints=decode_hints, processor_factory=processor_factory,
        use_lstm=False, encoder_init='default', dropout_prob=0.0,
        hint_teacher_forcing=0.0, hint_repred_mode='soft', nb_dims=[dims],
        nb_msg_passing_steps=1, debug=False, name=NET_NAME)
    return net(features_list, repred, algorithm_index, return_hints,
               return_all_outputs)

  if with_state:
    return hk.transform_with_state(forward)
  return hk.transform(forward)


def processor_state(state: dict[str, dict[str, jax.Array]]
                    ) -> dict[str, jax.Array]:
  """The Haiku state an equilibrium or rollout processor wrote (see
  ``integration.processors.DEQ_STATE_SCOPE``)."""
  scope = integration.DEQ_STATE_SCOPE
  found = [v for k, v in state.items() if k.split('/')[-1] == scope]
  if len(found) != 1:
    raise ValueError(f'expected the state of one {scope} module, got '
                     f'{sorted(state)}')
  return found[0]


class Alignment:
  """DEAR's alignment regulariser for the training loss.

  A frozen NAR (a ``CellProcessor`` network trained for the true number of
  steps, without hints) is rolled out on the same one-shot batch for the
  batch's ``steps`` (:class:`integration.RolloutProcessor`), and
  :func:`deq_clrs.alignment.alignment_loss` compares its states with the
  equilibrium processor's sampled solver states and output. The true
  lengths are used here, in training only.
  """

  def __init__(self, *, spec: clrs.Spec, dummy: clrs.Feedback,
               hidden_dim: int, cell: cells_lib.CellConfig,
               teacher_params: Params, weight: float):
    """
    Args:
      spec: the algorithm's CLRS spec.
      dummy: a one-shot batch (gives feature sizes).
      hidden_dim: latent size H (the teacher's and the student's).
      cell: the teacher's cell (the student's cell kind).
      teacher_params: the NAR network's parameters, renamed with
        :func:`integration.cell_params_as_equilibrium` (replicated).
      weight: the regulariser's weight in the loss.
    """
    self.spec, self.dummy, self.hidden_dim = spec, dummy, hidden_dim
    self.cell, self.teacher_params, self.weight = cell, teacher_params, weight

  def teacher_states(self, key: jax.Array, features: clrs.Features,
                     steps: int) -> jax.Array:
    """The teacher's states after steps 1 .. ``steps``: [B, T, N, H]."""
    net = build_network(
        self.spec, self.dummy, integration.RolloutFactory(self.cell, steps),
        hidden_dim=self.hidden_dim, encode_hints=False, decode_hints=False,
        with_state=True)
    _, state = net.apply(self.teacher_params, {}, key, [features],
                         repred=True, algorithm_index=0, return_hints=False,
                         return_all_outputs=False)
    return jax.lax.stop_gradient(processor_state(state)['states'])

  def loss(self, student_state: dict[str, Any], key: jax.Array,
           features: clrs.Features, lengths: jax.Array,
           steps: int) -> jax.Array:
    """The regulariser (before its weight) of one batch.

    Args:
      student_state: the Haiku state of the equilibrium network's training
        pass (its processor's samples and output).
      key: PRNG key of the teacher's pass.
      features: the one-shot features both networks see.
      lengths: [B] the graphs' true lengths.
      steps: static: the teacher's steps (the longest true length - 1).
    """
    mine = processor_state(student_state)
    teacher = self.teacher_states(key, features, steps)
    return alignment_lib.alignment_loss(
        mine['samples'], mine['samples_valid'], mine['output'], teacher,
        lengths - 1)
