"""Tests of scoring on cached datasets: per-graph scores, memory errors."""

import clrs
import jax
import numpy as np
import pytest

from deq_clrs import training
from deq_clrs.training import evaluation
from experiments.configs import test as test_config


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('data'))


def tiny_config(data_dir):
  config = test_config.get_config()
  config.data_dir = data_dir
  return config


def test_per_graph_scores_are_clrs_scores_of_each_graph():
  def point(name, type_, data):
    return clrs.DataPoint(name=name, location=clrs.Location.NODE,
                          type_=type_, data=np.asarray(data))
  # Two graphs of three nodes: a pointer (accuracy) and a mask (F1).
  truth = (point('pi', clrs.Type.POINTER, [[0, 0, 1], [2, 2, 2]]),
           point('m', clrs.Type.MASK, [[1, 0, 0], [1, 1, 0]]))
  preds = {'pi': point('pi', clrs.Type.POINTER, [[0, 1, 1], [2, 2, 2]]),
           'm': point('m', clrs.Type.MASK, [[1, 0, 1], [0, 0, 0]])}
  # Graph 0: pointer 2/3, mask F1 of tp 1, fp 1, fn 0 = 2/3: score 2/3.
  # Graph 1: pointer 1, mask F1 0 (nothing predicted, two missed): 1/2.
  assert evaluation.per_graph_scores(truth, preds) == [
      pytest.approx(2 / 3), pytest.approx(0.5)]
  # Each is CLRS's score of that graph alone.
  for i, score in enumerate(evaluation.per_graph_scores(truth, preds)):
    one = lambda x, i=i: x[i:i + 1]
    alone = clrs.evaluate(jax.tree_util.tree_map(one, truth),
                          jax.tree_util.tree_map(one, preds))
    assert score == pytest.approx(alone['score'])


class _OutOfMemory:
  """Models whose evaluation fails as XLA does when memory runs out."""

  def __init__(self, message):
    self.message = message

  def evaluate(self, *unused_args):
    raise jax.errors.JaxRuntimeError(self.message)


def test_running_out_of_memory_in_evaluation_names_the_batch_and_the_fix(
    data_dir):
  dataset = evaluation.load_eval_set(tiny_config(data_dir), 'test', 12)
  models = _OutOfMemory('RESOURCE_EXHAUSTED: Out of memory allocating '
                        '54116353472 bytes.')
  with pytest.raises(training.UserError) as raised:
    evaluation._evaluate_batch(models, None, None, dataset, False, 50)
  assert str(raised.value).startswith(
      'out of memory scoring a batch of 8 graphs of 12 nodes '
      '(eval_batch_size=50): score fewer graphs at a time '
      '(python -m experiments.evaluate --eval_batch_size=')
  # Other runtime errors are not disguised as memory problems.
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):
    evaluation._evaluate_batch(_OutOfMemory('INTERNAL: something else'), None,
                              None, dataset, False, 50)
