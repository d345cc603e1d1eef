"""Tests of the authors' evaluation sets, as redrawn by reference_data."""

import numpy as np
import pytest

from deq_clrs.training import data
from deq_clrs.training import reference_data
from deq_clrs.training.errors import UserError


def _input(feedback, name):
  return [dp.data for dp in feedback.features.inputs if dp.name == name][0]


def test_seeds_follow_the_reference_rule():
  assert reference_data.seed('val', 16) == 96
  assert reference_data.seed('test', 64) == 241
  with pytest.raises(UserError, match="not 'train'"):
    reference_data.seed('train', 16)


def test_algorithms_with_the_authors_own_samplers_are_refused():
  with pytest.raises(UserError, match='no reference recipe for .binary_search'):
    reference_data.generate('binary_search', 'test', 8, 2)


def test_a_set_is_the_reference_draw_order(tmp_path):
  """One seeded stream of graphs: a set of k graphs skips the first k // 10
  draws (graph and positions alike); positions are sorted uniform draws;
  the cache returns the same set."""
  first = reference_data.load_dataset('bellman_ford', 'val', 8, 4,
                                      data_dir=str(tmp_path))
  again = reference_data.load_dataset('bellman_ford', 'val', 8, 4,
                                      data_dir=str(tmp_path))
  for a, b in zip(first.features.inputs, again.features.inputs):
    np.testing.assert_array_equal(a.data, b.data)
  pos = _input(first, 'pos')
  assert pos.shape == (4, 8) and np.all(np.diff(pos, axis=1) > 0)
  # Ten graphs skip one draw: their first is the 4-set's second.
  ten = reference_data.generate('bellman_ford', 'val', 8, 10)
  assert data.num_graphs(ten) == 10
  for name in ('A', 'pos', 's'):
    np.testing.assert_array_equal(_input(ten, name)[:3],
                                  _input(first, name)[1:])


def test_the_reference_validation_set_is_theirs():
  """The authors' bellman_ford validation set (100 graphs of 16 nodes), as
  their code exports it (float32): first graph and sums over all graphs."""
  fb = reference_data.generate('bellman_ford', 'val', 16, 100)
  pos, a = _input(fb, 'pos'), _input(fb, 'A')
  np.testing.assert_allclose(
      pos[0, :4], [0.20888351, 0.29685465, 0.41590953, 0.46315339],
      atol=1e-7)
  assert int(_input(fb, 's')[0].argmax()) == 15
  np.testing.assert_array_equal(
      fb.outputs[0].data[0],
      [10, 15, 15, 2, 11, 7, 13, 11, 11, 5, 13, 15, 15, 11, 2, 15])
  assert a.sum() == pytest.approx(3536.8079, abs=1e-2)
  assert pos.sum() == pytest.approx(808.35425, abs=1e-3)
  np.testing.assert_array_equal(fb.features.lengths[:3], [5, 5, 4])


@pytest.mark.slow
def test_the_reference_test_set_at_64_nodes_is_theirs():
  """The first graph of the authors' bellman_ford test set (64 nodes), as
  their code exports it: positions, total edge weight and source."""
  fb = reference_data.generate('bellman_ford', 'test', 64, 100)
  np.testing.assert_allclose(
      _input(fb, 'pos')[0, :5],
      [0.00142441, 0.01502167, 0.01767314, 0.03368267, 0.04519567],
      atol=1e-7)
  assert _input(fb, 'A')[0].sum() == pytest.approx(183.1021191789, abs=1e-6)
  assert int(_input(fb, 's')[0].argmax()) == 9
  assert _input(fb, 'A').sum() == pytest.approx(56907.797, abs=0.1)
  assert _input(fb, 'pos').sum() == pytest.approx(3230.4314, abs=1e-2)
