"""Tests of the data helpers that need no dataset."""

import pytest

from deq_clrs.training import data


def test_check_algorithms_names_the_unknown_and_the_valid():
  data.check_algorithms(['bfs', 'insertion_sort'])
  data.check_algorithms([])
  with pytest.raises(ValueError, match=r"^unknown algorithm 'bogosort'; "
                     r'valid CLRS-30 algorithms: activity_selector, '):
    data.check_algorithms(['bfs', 'bogosort'])
  with pytest.raises(ValueError,
                     match=r"^unknown algorithms \['a', 'b'\]; valid"):
    data.check_algorithms(['a', 'b'])
  # Specs without a CLRS-30 setting are not algorithms of the benchmark.
  with pytest.raises(ValueError, match='bipartite_matching'):
    data.check_algorithms(['bipartite_matching'])
