"""DEAR and NAR train and test end to end on CLRS's twelve graph
algorithms (the checks: ``tests/helpers/clrs30.py``; the other eighteen:
``test_clrs30_others.py``). Slow: CI runs them with ``--runslow``."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / 'helpers'))

import clrs30  # noqa: E402


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('data'))


def test_the_two_files_cover_clrs_30_once():
  import clrs
  assert sorted(clrs30.GRAPHS + clrs30.OTHERS) == sorted(
      clrs.CLRS_30_ALGS_SETTINGS)
  assert len(set(clrs30.GRAPHS)) == 12 and len(clrs30.OTHERS) == 18
  assert not any(clrs30.needs_permutations(a) for a in clrs30.GRAPHS)


@pytest.mark.slow
@pytest.mark.parametrize('algorithm', clrs30.GRAPHS)
def test_dear_and_nar_train_and_test(algorithm, data_dir, tmp_path):
  clrs30.train_and_check(algorithm, data_dir, tmp_path)
