"""Tests of nar_lt's spec, data, cap and read-point checks."""

import clrs
import ml_collections
import numpy as np
import pytest

from deq_clrs.training import data as data_lib
from deq_clrs.training import termination


def test_termination_target_is_one_until_the_last_step():
  lengths = np.array([2, 4, 3])
  fb = data_lib.subsample(data_lib.generate('bfs', 6, 3, seed=0),
                          np.arange(3))
  fb = fb._replace(features=fb.features._replace(lengths=lengths))
  (hint,) = termination.termination_feedback(fb, steps=5).features.hints
  assert hint.name == termination.LT_HINT
  np.testing.assert_array_equal(hint.data.T, [[1, 0, 0, 0, 0],
                                              [1, 1, 1, 0, 0],
                                              [1, 1, 0, 0, 0]])


def test_the_spec_keeps_inputs_and_outputs_and_only_the_termination_hint():
  spec = data_lib.algorithm_spec('bfs')
  lt = termination.termination_spec(spec)
  assert lt[termination.LT_HINT] == termination.LT_SPEC
  hints = [name for name, entry in lt.items()
           if entry[0] == clrs.Stage.HINT]
  assert hints == [termination.LT_HINT]
  kept = {name: entry for name, entry in spec.items()
          if entry[0] != clrs.Stage.HINT}
  assert {k: v for k, v in lt.items() if k != termination.LT_HINT} == kept


@pytest.mark.parametrize('cap_per_node, nodes, cap', [
    (1.0, 12, 12), (0.5, 5, 3), (0.01, 4, 1), (2.0, 16, 32)])
def test_the_step_cap_grows_with_the_graph(cap_per_node, nodes, cap):
  config = ml_collections.ConfigDict(
      {'nar_lt': {'cap_per_node': cap_per_node}})
  assert termination.lt_step_cap(config, nodes) == cap


def test_reading_at_the_true_length_is_for_nar_lt_only():
  termination.check_lt_read_at('stop', 'dear')
  termination.check_lt_read_at('true_length', 'nar_lt')
  with pytest.raises(ValueError, match="for nar_lt runs only; this is a "
                     "'nar' run"):
    termination.check_lt_read_at('true_length', 'nar')
  with pytest.raises(ValueError, match='read_at must be one of'):
    termination.check_lt_read_at('end', 'nar_lt')
