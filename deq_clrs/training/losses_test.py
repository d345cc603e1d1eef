"""Our network and losses against CLRS's public ``BaselineModel``.

On the same parameters and batch, the task loss of :mod:`step` (CLRS's
public ``Net`` under ``hk.transform``, our losses) must equal the loss that
``BaselineModel.compute_grad`` reports, for every DEAR algorithm and model.
"""

import clrs
import jax
import numpy as np
import pytest

from deq_clrs.training import data as data_lib
from deq_clrs.training import losses
from deq_clrs.training import models as models_lib
from deq_clrs.training import network as network_lib
from deq_clrs.training import parallel
from deq_clrs.training import step as step_lib
from deq_clrs.training import termination
from experiments.configs import test as test_config

ALGORITHMS = ('bfs', 'bellman_ford', 'dag_shortest_paths', 'floyd_warshall',
              'mst_prim', 'dfs', 'strongly_connected_components', 'minimum',
              'binary_search', 'insertion_sort')
RTOL = 1e-5


def _config(algorithm, model):
  config = test_config.get_config()
  config.algorithm = algorithm
  config.model = model
  config.hidden_size = 4
  config.deq.max_iter = 3
  return config


def _pair(config, feedback):
  """A BaselineModel (public API) and our Stepper on the same network."""
  spec = models_lib.model_spec(config)
  prepare = models_lib.preparation(config)
  fb = prepare(feedback)
  factory = models_lib.processor_factory(config)
  hints = models_lib.uses_hints(config)
  decode = models_lib.decodes_hints(config)
  baseline = clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=fb, processor_factory=factory,
      hidden_dim=config.hidden_size, encode_hints=hints, decode_hints=decode)
  net = network_lib.build_network(spec, fb, factory,
                                  hidden_dim=config.hidden_size,
                                  encode_hints=hints, decode_hints=decode)
  stepper = step_lib.Stepper(
      spec=spec, net=net, optimizer=step_lib.make_optimizer(1e-3, 1.0),
      mesh=parallel.make_mesh(jax.devices()[:1]), decode_hints=decode)
  return baseline, stepper, fb


# One algorithm per model in the default run (DEAR's node pointer: bfs;
# hints of several types: nar_hints on Bellman-Ford; the termination hint:
# nar_lt); the whole matrix, every output type with DEAR included (edge
# pointer: Floyd-Warshall; mask_one: minimum; permutation pointer:
# insertion sort), with --runslow (CI runs it).
FAST = [('bfs', 'dear'), ('minimum', 'nar'), ('binary_search', 'nar_lt'),
        ('bellman_ford', 'nar_hints')]
SLOW = [pytest.param(a, m, marks=pytest.mark.slow)
        for m in ('dear', 'nar', 'nar_lt', 'nar_hints') for a in ALGORITHMS
        if (a, m) not in FAST]


@pytest.mark.parametrize('algorithm,model', FAST + SLOW)
def test_loss_equals_baseline_models(algorithm, model):
  config = _config(algorithm, model)
  feedback = data_lib.generate(algorithm, 5, 2, seed=1,
                               with_hints=model == 'nar_hints')
  baseline, stepper, fb = _pair(config, feedback)
  params = stepper.init_params(0, fb.features)
  baseline.params = parallel.to_host(params)
  key = jax.random.PRNGKey(3)
  want, _ = baseline.compute_grad(key, fb)
  got = stepper.loss(params, key, fb)
  np.testing.assert_allclose(float(got), float(want), rtol=RTOL)


@pytest.mark.parametrize('model,processor', [('dear', ''), ('nar_hints', ''),
                                             ('nar', 'clrs:triplet_gmpnn')])
def test_parameters_have_baseline_models_names_and_shapes(model, processor):
  config = _config('dfs', model)
  config.processor = processor
  baseline, stepper, fb = _pair(config, data_lib.generate(
      'dfs', 5, 2, seed=1, with_hints=model == 'nar_hints'))
  init = jax.jit(lambda key, feats: baseline.net_fn.init(
      key, feats, True, algorithm_index=-1, return_hints=False,
      return_all_outputs=False))
  want = init(jax.random.PRNGKey(0), [fb.features])
  got = parallel.to_host(stepper.init_params(0, fb.features))
  assert (jax.tree_util.tree_structure(got)
          == jax.tree_util.tree_structure(want))
  shapes = lambda tree: jax.tree_util.tree_map(np.shape, tree)
  assert shapes(got) == shapes(want)
  jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)


@pytest.mark.slow
def test_padding_graphs_with_zero_weight_leaves_the_loss_unchanged():
  feedback = data_lib.generate('dfs', 5, 3, seed=2, with_hints=True)
  config = _config('dfs', 'nar_hints')
  _, stepper, fb = _pair(config, feedback)
  params = stepper.init_params(0, fb.features)
  key = jax.random.PRNGKey(0)
  want = stepper.loss(params, key, fb)
  padded = parallel.pad_batch(fb, 2)
  outs, hints = stepper.net.apply(
      params, key, [padded.features], repred=False, algorithm_index=0,
      return_hints=True, return_all_outputs=False)
  got = losses.task_loss(padded, outs, hints,
                         np.array([1, 1, 1, 0, 0], np.float32))
  np.testing.assert_allclose(float(got), float(want), rtol=RTOL)


@pytest.mark.parametrize('algorithm,cap_per_node', [
    ('bfs', 5.0), pytest.param('dfs', 0.4, marks=pytest.mark.slow)])
def test_nar_lt_evaluation_loss_is_the_loss_at_the_true_lengths(
    algorithm, cap_per_node):
  """One capped pass gives the score and the loss; the loss is CLRS's at the
  true lengths (the pass runs on past a cap shorter than a trajectory)."""
  config = _config(algorithm, 'nar_lt')
  config.nar_lt.cap_per_node = cap_per_node
  feedback = data_lib.generate(algorithm, 5, 3, seed=1)
  cap = termination.lt_step_cap(config, 5)
  steps = int(np.max(feedback.features.lengths))
  assert (cap + 1 < steps) == (cap_per_node < 1)
  models = models_lib.build_models(config, feedback)
  params = models.initial_state.params
  baseline, _, fb = _pair(config, feedback)
  baseline.params = parallel.to_host(params)
  key = jax.random.PRNGKey(3)
  want, _ = baseline.compute_grad(key, fb)
  got = models.evaluate(params, key, feedback, True)
  np.testing.assert_allclose(float(got.loss), float(want), rtol=RTOL)
  # The predictions are those of the run to the cap alone.
  alone = models.evaluate(params, key, feedback, False)
  for name, dp in got.preds.items():
    np.testing.assert_array_equal(dp.data, alone.preds[name].data)
  np.testing.assert_array_equal(got.stats['iterations'],
                                alone.stats['iterations'])


@pytest.mark.parametrize('algorithm,cap_per_node', [
    ('bfs', 5.0), pytest.param('dfs', 0.4, marks=pytest.mark.slow)])
def test_nar_lt_read_at_the_true_length_is_clrs_prediction(
    algorithm, cap_per_node):
  """The diagnostic read (``lt_read_at='true_length'``) gives CLRS's own
  predictions at the true lengths, past a short cap too; the stops it
  reports are the model's."""
  config = _config(algorithm, 'nar_lt')
  config.nar_lt.cap_per_node = cap_per_node
  feedback = data_lib.generate(algorithm, 5, 3, seed=4)
  models = models_lib.build_models(config, feedback, lt_read_at='true_length')
  params = models.initial_state.params
  baseline, _, fb = _pair(config, feedback)
  baseline.params = parallel.to_host(params)
  key = jax.random.PRNGKey(5)
  want, _ = baseline.predict(key, fb.features)
  got = models.evaluate(params, key, feedback)
  assert set(got.preds) == set(want)
  for name, dp in want.items():
    np.testing.assert_allclose(got.preds[name].data, dp.data, atol=1e-5)
  at_stop = models_lib.build_models(config, feedback).evaluate(
      params, key, feedback)
  np.testing.assert_array_equal(got.stats['iterations'],
                                at_stop.stats['iterations'])
  with pytest.raises(ValueError, match='for nar_lt runs only'):
    models_lib.build_models(_config(algorithm, 'nar'), feedback,
                            lt_read_at='true_length')


@pytest.mark.parametrize('algorithm', ['bellman_ford', 'dfs', 'mst_prim'])
def test_graph_adjacency_is_the_one_clrs_builds(algorithm):
  # pylint: disable-next=g-import-not-at-top
  from clrs._src import encoders
  fb = data_lib.generate(algorithm, 8, 4, seed=1)
  n = data_lib.num_nodes(fb)
  want = np.repeat(np.eye(n, dtype=np.float32)[None], 4, axis=0)
  for dp in fb.features.inputs:
    if dp.location == clrs.Location.NODE and dp.type_ == clrs.Type.POINTER:
      dp = clrs.DataPoint(dp.name, dp.location, dp.type_,
                          np.asarray(jax.nn.one_hot(dp.data, n)))
    want = encoders.accum_adj_mat(dp, want)
  np.testing.assert_array_equal(losses.graph_adjacency(fb.features), want)


def test_pointer_loss_over_edges_is_the_softmax_over_neighbours():
  fb = data_lib.generate('bellman_ford', 8, 4, seed=2)
  (pi,) = fb.outputs
  n = data_lib.num_nodes(fb)
  logits = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (4, n, n)))
  adj = np.asarray(losses.graph_adjacency(fb.features))
  target = np.asarray(pi.data).astype(int)
  # Every true pointer is along an edge or to the node itself.
  assert all(adj[b, i, target[b, i]] for b in range(4) for i in range(n))
  want = []
  for b in range(4):
    for i in range(n):
      nbrs = np.flatnonzero(adj[b, i])
      z = logits[b, i, nbrs]
      log_z = np.log(np.sum(np.exp(z - z.max()))) + z.max()
      want.append(log_z - logits[b, i, target[b, i]])
  got = losses.task_loss(fb, {'pi': logits}, None, pointers_over_edges=True)
  np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)
  # CLRS's loss (all N nodes in the softmax) is larger on the same logits.
  assert float(losses.task_loss(fb, {'pi': logits}, None)) > float(got) + 0.1
  # Gradients reach only the logits of edges.
  grad = jax.grad(lambda x: losses.task_loss(
      fb, {'pi': x}, None, pointers_over_edges=True))(logits)
  assert np.all(np.asarray(grad)[adj == 0] == 0)
  assert np.all(np.isfinite(grad))
