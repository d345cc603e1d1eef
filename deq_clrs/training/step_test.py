"""Tests of the training and evaluation steps: the loss adds exactly the
weighted alignment cost and needs the true lengths, and a learned-termination
model is read at each graph's own stop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import alignment as alignment_lib
from deq_clrs import integration
from deq_clrs.training import models as models_lib
from deq_clrs.training import network as network_lib
from deq_clrs.training import parallel
from deq_clrs.training import step as step_lib
from deq_clrs.training import termination
from deq_clrs.training.network_test import _config


@pytest.fixture(scope='module')
def aligned(batch, nar):
  return models_lib.build_models(_config('dear', 0.01), batch, nar[1])


@pytest.mark.slow
def test_the_loss_adds_the_weighted_alignment_cost(batch, aligned):
  plain = models_lib.build_models(_config('dear'), batch)
  params = plain.initial_state.params
  key = jax.random.PRNGKey(5)
  weight = 0.01
  models = aligned
  feedback, extras = models.train_inputs(batch)
  assert set(extras) == {'lengths', 'steps'}
  assert extras['steps'] == max(dp.data.shape[0]
                                for dp in batch.features.hints) - 1
  loss, grads = models.stepper.loss_and_grads(params, key, feedback,
                                              **extras)
  task, task_grads = plain.stepper.loss_and_grads(
      params, key, plain.prepare(batch))

  # The difference is the weighted alignment_loss of the processor's
  # samples against the teacher's states, with L = true length - 1 per
  # graph (noise and samples use separate keys: the task term is the same).
  @jax.jit
  def cost(params, features, lengths):
    (_, _), state = models.stepper.net.apply(
        params, {}, key, [features], repred=False, algorithm_index=0,
        return_hints=True, return_all_outputs=False)
    mine = network_lib.processor_state(state)
    assert mine['samples'].shape[:2] == (4, alignment_lib.max_samples(12))
    teacher_states = models.stepper.alignment.teacher_states(
        jax.random.fold_in(key, 1), features, extras['steps'])
    return alignment_lib.alignment_loss(
        mine['samples'], mine['samples_valid'], mine['output'],
        teacher_states, lengths - 1)

  want = float(cost(params, feedback.features, jnp.asarray(extras['lengths'])))
  assert want > 0
  np.testing.assert_allclose(float(loss) - float(task), weight * want,
                             rtol=1e-3)
  # And it moves the gradient of the processor's cell.
  cell = [k for k in task_grads if integration.DEQ_STATE_SCOPE in k]
  assert cell
  diff = sum(float(jnp.abs(grads[k][p] - task_grads[k][p]).sum())
             for k in cell for p in task_grads[k])
  assert diff > 0


def test_the_training_step_needs_the_lengths(batch, aligned):
  feedback, _ = aligned.train_inputs(batch)
  with pytest.raises(ValueError, match='true lengths'):
    aligned.stepper.loss(aligned.initial_state.params, jax.random.PRNGKey(0),
                         feedback)


def test_nar_lt_reads_each_graph_at_its_stop_without_stacking_outputs(
    batch, monkeypatch):
  """The learned-termination read gives each graph's outputs after its own
  stop step, as CLRS's outputs of every step have them, while the passes it
  makes never ask CLRS to stack the outputs over the steps (their memory
  would grow with the cap: 17 GB for Floyd-Warshall at 64 nodes)."""
  config = _config('nar_lt')
  models = models_lib.build_models(config, batch)
  stepper = models.stepper
  params = parallel.to_host(models.initial_state.params)
  cap = termination.lt_step_cap(config, 6)
  fb = termination.termination_feedback(batch, steps=cap + 1)
  fb = fb._replace(features=fb.features._replace(
      lengths=np.full_like(fb.features.lengths, cap + 1)))
  key = jax.random.PRNGKey(0)

  def every_step(params):
    return stepper.eval_net.apply(
        params, key, [fb.features], repred=True, algorithm_index=0,
        return_hints=True, return_all_outputs=True)

  # Shift the termination logit so that the graphs stop at different steps.
  _, hints = every_step(params)
  go_on = np.stack([h[termination.LT_HINT] for h in hints[:cap]])
  bias = (f'{network_lib.NET_NAME}/~_construct_encoders_decoders/'
          f'algo_0_{termination.LT_HINT}_dec_linear')
  params[bias]['b'] = params[bias]['b'] - (go_on[2].max() + go_on[2].min()) / 2
  outs, hints = every_step(params)
  stop, _ = step_lib.first_stop(
      np.stack([h[termination.LT_HINT] for h in hints[:cap]]))
  stop = np.asarray(stop)
  assert len(set(stop.tolist())) > 1, stop
  assert np.any(stop + 2 != np.asarray(batch.features.lengths))

  calls = []
  apply = stepper.eval_net.apply

  def spy(*args, **kwargs):
    calls.append(kwargs['return_all_outputs'])
    return apply(*args, **kwargs)

  monkeypatch.setattr(stepper, 'eval_net',
                      stepper.eval_net._replace(apply=spy))
  got = models.evaluate(stepper.replicate(params), key, batch)
  assert calls and not any(calls)
  np.testing.assert_array_equal(got.stats['iterations'], stop + 1)
  want = stepper._postprocess(
      {k: v[stop, np.arange(len(stop))] for k, v in outs.items()})
  assert set(got.preds) == set(want)
  for name, dp in want.items():
    np.testing.assert_array_equal(got.preds[name].data, dp.data)
