"""DEAR and NAR train and test end to end on CLRS's eighteen algorithms
outside graphs: sorting, searching, divide and conquer, dynamic
programming, greedy, strings, geometry (the checks:
``tests/helpers/clrs30.py``). Slow: CI runs them with ``--runslow``."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / 'helpers'))

import clrs30  # noqa: E402


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('data'))


def test_the_sorting_algorithms_are_the_permutation_ones():
  # CLRS post-processes these four into permutation pointers.
  assert sorted(a for a in clrs30.OTHERS if clrs30.needs_permutations(a)) == [
      'bubble_sort', 'heapsort', 'insertion_sort', 'quicksort']


@pytest.mark.slow
@pytest.mark.parametrize('algorithm', clrs30.OTHERS)
def test_dear_and_nar_train_and_test(algorithm, data_dir, tmp_path):
  clrs30.train_and_check(algorithm, data_dir, tmp_path)
