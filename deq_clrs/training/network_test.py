"""Tests of the network a step runs: the alignment regulariser's teacher
network is the trained NAR, and its rollout starts with the NAR's state.


``step_test`` shares this file's config and data."""

import clrs
import jax
import numpy as np

from deq_clrs import integration
from deq_clrs.training import models as models_lib
from deq_clrs.training import network as network_lib
from deq_clrs.training import parallel
from experiments.configs import test as test_config

ALGORITHM = 'bfs'


def _config(model, weight=0.0):
  config = test_config.get_config()
  config.algorithm = ALGORITHM
  config.model = model
  config.hidden_size = 8
  config.deq.max_iter = 12
  if weight:
    config.align.weight = weight
    config.align.teacher = '(unused: parameters given directly)'
  return config


def _truncated(feedback, steps):
  """The batch with hints cut to ``steps`` time steps and every length
  ``steps``."""
  features = feedback.features
  hints = tuple(clrs.DataPoint(name=dp.name, location=dp.location,
                               type_=dp.type_, data=dp.data[:steps])
                for dp in features.hints)
  return feedback._replace(features=features._replace(
      hints=hints, lengths=np.full_like(features.lengths, steps)))


def test_the_teacher_network_is_the_nar(batch, nar):
  nar_models, params = nar
  spec = models_lib.model_spec(_config('nar'))
  one_shot = integration.one_shot_feedback(batch)
  renamed = integration.cell_params_as_equilibrium(params)
  # The renamed parameters are an equilibrium network's, name for name.
  dear = models_lib.build_models(_config('dear'), batch)
  dear_params = parallel.to_host(dear.initial_state.params)
  assert ({k: jax.tree_util.tree_map(np.shape, v) for k, v in renamed.items()}
          == {k: jax.tree_util.tree_map(np.shape, v)
              for k, v in dear_params.items()})
  # One step of the teacher decodes to the NAR's outputs on graphs of true
  # length 2 (both decode from [inputs, 0, state after step 1]).
  key = jax.random.PRNGKey(0)
  two = _truncated(batch, 2)
  want, _ = nar_models.stepper.net.apply(
      params, key, [two.features], repred=True, algorithm_index=0,
      return_hints=False, return_all_outputs=False)
  teacher = network_lib.build_network(
      spec, one_shot, integration.RolloutFactory(
          models_lib.processor_factory(_config('nar')).cell, 1),
      hidden_dim=8, encode_hints=False, decode_hints=False, with_state=True)
  (got, _), state = teacher.apply(
      renamed, {}, key, [one_shot.features], repred=True, algorithm_index=0,
      return_hints=False, return_all_outputs=False)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
  # A longer rollout starts with the same state.
  align = network_lib.Alignment(spec=spec, dummy=one_shot, hidden_dim=8,
                             cell=models_lib.processor_factory(
                                 _config('nar')).cell,
                             teacher_params=renamed, weight=1.0)
  three = align.teacher_states(key, one_shot.features, 3)
  assert three.shape == (4, 3, 6, 8)
  np.testing.assert_allclose(
      three[:, 0], network_lib.processor_state(state)['states'][:, 0],
      rtol=1e-5, atol=1e-6)
