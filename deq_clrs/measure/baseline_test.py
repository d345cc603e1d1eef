"""The drop-in user path: CLRS's stock ``BaselineModel`` with DEAR inside.

A user builds ``clrs.models.BaselineModel`` with
``deq_clrs.get_processor_factory('deq_mpnn')`` on one-shot data and calls
its public ``init``, ``feedback`` and ``predict``; the measurements of
:mod:`deq_clrs.measure` do the same, with the ``init`` compiled and the
compiled memory read from functions of their own."""

import clrs
import jax
import numpy as np
import pytest

import deq_clrs
from deq_clrs.measure import baseline

NODES, GRAPHS, HIDDEN = 6, 2, 8
# Few iterations: the test checks the wiring, not the solver.
OPTIONS = {'max_iter': 4, 'eval_max_iter': 4}


def _equal(a, b) -> bool:
  same = jax.tree_util.tree_map(
      lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)
  return (jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
          and all(jax.tree_util.tree_leaves(same)))


def _copy(tree):
  """A host copy (a CPU device_get may share the buffers the next step
  donates)."""
  return jax.tree_util.tree_map(np.array, tree)


def _user_model(spec, feedback, factory):
  """The model a user builds (CLRS's constructor, as README.md's example)."""
  return clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=feedback, processor_factory=factory,
      hidden_dim=HIDDEN, encode_hints=False, decode_hints=False,
      learning_rate=1e-2)


@pytest.fixture(scope='module')
def user_path():
  """A user's model, built and initialised (eagerly, as CLRS does it) on a
  one-shot batch of GRAPHS graphs of NODES nodes, and its initial
  parameters and optimiser state."""
  sampler, spec = clrs.build_sampler('bfs', num_samples=-1, length=NODES,
                                     seed=0)
  feedback = deq_clrs.one_shot_feedback(sampler.next(GRAPHS))
  factory = deq_clrs.get_processor_factory('deq_mpnn', **OPTIONS)
  model = _user_model(spec, feedback, factory)
  model.init(feedback.features, 0)
  initial = _copy((model.params, model.opt_state))
  return spec, feedback, factory, model, initial


def test_the_drop_in_model_trains_and_predicts(user_path):
  _, feedback, _, model, _ = user_path
  before = _copy(model.params)
  losses = [float(model.feedback(jax.random.PRNGKey(i), feedback))
            for i in range(4)]
  assert np.all(np.isfinite(losses)), losses
  assert min(losses[1:]) < losses[0], losses  # the same batch, Adam 1e-2
  assert not _equal(before, model.params)
  outputs, hints = model.predict(jax.random.PRNGKey(0), feedback.features)
  assert not hints  # decode_hints=False
  assert set(outputs) == {dp.name for dp in feedback.outputs} == {'pi'}
  # bfs's output: a parent pointer per node, [B, N] node indices.
  pi = np.asarray(outputs['pi'].data)
  assert pi.shape == (GRAPHS, NODES)
  assert ((0 <= pi) & (pi < NODES)).all()


def test_the_compiled_init_is_the_public_init(user_path):
  spec, feedback, factory, _, (params, opt_state) = user_path
  ours = _user_model(spec, feedback, factory)
  baseline.init_model(ours, feedback.features, 0)
  assert _equal(params, ours.params)
  assert _equal(opt_state, ours.opt_state)
  leaves = jax.tree_util.tree_leaves((ours.params, ours.opt_state))
  assert not any(isinstance(x, jax.core.Tracer) for x in leaves)
  loss = ours.feedback(jax.random.PRNGKey(0), feedback)
  assert np.isfinite(float(loss))


# Slow-marked (CI's slow set runs it) to keep the default run under 8
# minutes on 2 cores; it took 40-60 s there.
@pytest.mark.slow
def test_compiled_memory_leaves_the_model_as_it_was(user_path):
  spec, feedback, factory, _, _ = user_path
  model = baseline.baseline_model(spec, feedback, factory, HIDDEN)
  baseline.init_model(model, feedback.features, 0)
  params, opt_state = model.params, model.opt_state
  train = baseline.feedback_memory(model, feedback)
  infer = baseline.predict_memory(model, feedback.features)
  # The parameters and Adam's two moments are arguments of the step.
  param_bytes = sum(np.asarray(x).nbytes
                    for x in jax.tree_util.tree_leaves(params))
  assert train > 3 * param_bytes
  assert 0 < infer < train
  assert _equal(params, model.params)
  assert _equal(opt_state, model.opt_state)
  assert np.isfinite(float(model.feedback(jax.random.PRNGKey(1), feedback)))
