"""What tests/test_clrs30_*.py check on each CLRS-30 algorithm.

The paper and ``results/`` cover DEAR's ten algorithms, but the factory and
the training entry point accept all thirty. For each algorithm this trains
``dear`` and ``nar`` for two steps with the tiny test config (one shared
dataset cache), tests them, and checks what a user of the other twenty
relies on: finite losses; scores in [0, 1]; DEAR's data in one-shot form
(lengths 1, hints cut to one step, so CLRS's ``Net`` calls the processor
once per sample) and its predictions unchanged when the true number of
steps is corrupted; CLRS's permutation preprocessing exactly where CLRS's
spec asks for it. The thirty are split over two test files so that
pytest-xdist (one file per worker) runs them on both cores.
"""

import math
import pathlib

import clrs
import jax
import numpy as np

from deq_clrs import training
from deq_clrs.training import data as data_lib
from deq_clrs.training import evaluation
from deq_clrs.training import models as models_lib
from deq_clrs.training import preflight
from experiments.configs import test as test_config

ALGORITHMS = preflight.CLRS_30_ALGORITHMS
#: CLRS's graph algorithms (chapters 22-25 of CLRS); the other eighteen are
#: sorting, searching, divide and conquer, dynamic programming, greedy,
#: strings and geometry.
GRAPHS = ('articulation_points', 'bellman_ford', 'bfs', 'bridges',
          'dag_shortest_paths', 'dfs', 'dijkstra', 'floyd_warshall',
          'mst_kruskal', 'mst_prim', 'strongly_connected_components',
          'topological_sort')
OTHERS = tuple(a for a in ALGORITHMS if a not in GRAPHS)
# Tested at the validation size, so that each model's evaluation compiles
# once (the compilations are most of this test's time).
TEST_SIZE = '8'


def _config(data_dir: str, algorithm: str, model: str):
  config = test_config.get_config()
  config.data_dir = data_dir
  config.algorithm = algorithm
  config.model = model
  config.hidden_size = 8
  config.train_steps = 2
  config.test_sizes = (int(TEST_SIZE),)
  config.tensorboard = False
  return config


def needs_permutations(algorithm: str) -> bool:
  """Whether CLRS's spec of ``algorithm`` has a SHOULD_BE_PERMUTATION
  field (CLRS post-processes those into permutation pointers)."""
  return any(t == clrs.Type.SHOULD_BE_PERMUTATION
             for _, _, t in clrs.SPECS[algorithm].values())


def _check_results(results: dict, model: str) -> None:
  losses = [r[k] for r in results['history'] for k in ('train_loss', 'val_loss')
            if r.get(k) is not None]
  assert losses and all(math.isfinite(x) for x in losses), losses
  assert math.isfinite(results['final_train_loss'])
  assert math.isfinite(results['test_loss'][TEST_SIZE])
  assert 0.0 <= results['val_score'] <= 1.0
  scores = results['test_scores'][TEST_SIZE]
  assert scores and all(0.0 <= s <= 1.0 for s in scores.values()), scores
  per_graph = results['test_scores_per_graph'][TEST_SIZE]
  assert all(0.0 <= s <= 1.0 for s in per_graph)
  if model == 'dear':
    solver = results['solver'][TEST_SIZE]
    cap = results['config']['deq']['eval_max_iter']
    assert 1 <= solver['iterations_mean'] <= solver['iterations_max'] <= cap


def _check_permutations(config) -> None:
  """Sorting-like algorithms (a SHOULD_BE_PERMUTATION field in CLRS's spec)
  get CLRS's permutation pointer and its mask; no other algorithm does."""
  spec = models_lib.model_spec(config)
  types = {name: t for name, (_, _, t) in spec.items()}
  train = data_lib.load_dataset(
      config.algorithm, 'train', config.train_sizes[0],
      config.train_samples_per_size, data_dir=config.data_dir,
      er_probs=config.er_probs)
  outputs = {dp.name: dp for dp in train.outputs}
  perm = [n for n, t in types.items() if t == clrs.Type.PERMUTATION_POINTER]
  if not needs_permutations(config.algorithm):
    assert not perm
    return
  assert perm and clrs.Type.SHOULD_BE_PERMUTATION not in types.values()
  for name in perm:
    assert types[name + '_mask'] == clrs.Type.MASK_ONE
    # One-hot rows that make a permutation of the nodes.
    data = np.asarray(outputs[name].data)
    np.testing.assert_array_equal(data.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(data.sum(axis=-2), 1.0)


def _check_one_shot(config) -> None:
  """DEAR trains on one-shot data, and its predictions do not depend on
  the test graphs' true number of steps."""
  train = data_lib.load_dataset(
      config.algorithm, 'train', config.train_sizes[0],
      config.train_samples_per_size, data_dir=config.data_dir,
      er_probs=config.er_probs)
  prepared = models_lib.preparation(config)(train)
  np.testing.assert_array_equal(prepared.features.lengths, 1)
  assert all(dp.data.shape[0] == 1 for dp in prepared.features.hints)

  models = models_lib.build_models(config, train)
  test = evaluation.load_eval_set(config, 'test', int(TEST_SIZE))
  lengths = np.asarray(test.features.lengths)
  assert lengths.max() > 1  # the algorithm takes several steps here
  corrupted = test._replace(features=test.features._replace(
      lengths=lengths[::-1] + 7))
  params = models.initial_state.params
  key = jax.random.PRNGKey(0)
  preds = models.evaluate(params, key, test).preds
  again = models.evaluate(params, key, corrupted).preds
  for name in preds:
    np.testing.assert_array_equal(preds[name].data, again[name].data)


def train_and_check(algorithm: str, data_dir: str,
                    workdir: pathlib.Path) -> None:
  """Two training steps of ``dear`` and ``nar`` on ``algorithm``, tested,
  and every check of this module on them."""
  for model in ('dear', 'nar'):
    config = _config(data_dir, algorithm, model)
    results = training.train_and_evaluate(config, str(workdir / model))
    assert results['algorithm'] == algorithm and results['model'] == model
    _check_results(results, model)
  _check_permutations(config)
  _check_one_shot(_config(data_dir, algorithm, 'dear'))
