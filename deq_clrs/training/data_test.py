"""Tests of the data helpers and of the dataset cache (tiny datasets)."""

import hashlib
import os
import pickle

import jax
import numpy as np
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


def _load(directory):
  """A tiny cached dataset (4 BFS graphs of 6 nodes) and its file."""
  args = dict(algorithm='bfs', split='test', size=6, num_samples=4)
  return (data.load_dataset(**args, data_dir=directory),
          data.cache_path(**args, data_dir=directory))


def _warnings(caplog):
  return [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']


def _assert_same(a, b):
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_a_cache_file_carries_the_checksum_of_its_pickle(tmp_path):
  _, path = _load(str(tmp_path))
  with open(path, 'rb') as f:
    content = f.read()
  header = len(data.CACHE_MAGIC) + 32
  assert content.startswith(data.CACHE_MAGIC)
  assert hashlib.sha256(content[header:]).digest() == content[
      len(data.CACHE_MAGIC):header]
  assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temp file


def test_bytes_overwritten_in_place_are_caught_and_generated_again(
    tmp_path, caplog):
  first, path = _load(str(tmp_path / 'data'))
  size = os.path.getsize(path)
  # The middle third overwritten with as many random bytes: the length is
  # unchanged, so only the checksum can tell (issue 56: a validation file
  # damaged so loaded without a word and its loss was NaN).
  start, stop = size // 3, 2 * size // 3
  with open(path, 'r+b') as f:
    f.seek(start)
    original = f.read(stop - start)
    noise = np.random.default_rng(0).bytes(stop - start)
    assert noise != original
    f.seek(start)
    f.write(noise)
  assert os.path.getsize(path) == size
  caplog.clear()
  again, _ = _load(str(tmp_path / 'data'))
  (message,) = _warnings(caplog)
  assert message.startswith(f'dataset cache file {path}: checksum mismatch')
  assert message.endswith('generating it again')
  fresh, _ = _load(str(tmp_path / 'fresh'))
  _assert_same(again, fresh)
  _assert_same(again, first)
  caplog.clear()  # The file written again passes its check.
  _assert_same(_load(str(tmp_path / 'data'))[0], fresh)
  assert not _warnings(caplog)


def test_a_cache_file_without_a_checksum_is_generated_again(tmp_path, caplog):
  first, path = _load(str(tmp_path))
  with open(path, 'wb') as f:  # As cache files were written before.
    pickle.dump(first, f, protocol=pickle.HIGHEST_PROTOCOL)
  caplog.clear()
  again, _ = _load(str(tmp_path))
  (message,) = _warnings(caplog)
  assert message == (f'dataset cache file {path}: no checksum (written '
                     'before cache files carried one, or its first bytes are '
                     'damaged); generating it again')
  _assert_same(again, first)
  with open(path, 'rb') as f:
    assert f.read(len(data.CACHE_MAGIC)) == data.CACHE_MAGIC
  caplog.clear()
  _load(str(tmp_path))
  assert not _warnings(caplog)


def test_a_file_that_passes_its_check_but_is_not_the_dataset_is_refused(
    tmp_path, caplog):
  first, path = _load(str(tmp_path))
  data._atomic_pickle({'not': 'a dataset'}, path)
  caplog.clear()
  _assert_same(_load(str(tmp_path))[0], first)
  (message,) = _warnings(caplog)
  assert path in message and 'holds a dict, not a Feedback' in message


def _input(feedback, name):
  return [dp.data for dp in feedback.features.inputs if dp.name == name][0]


def test_random_pos_replaces_only_the_positions():
  even = data.generate('bellman_ford', 10, 6, seed=3, er_probs=(0.5,))
  rand = data.generate('bellman_ford', 10, 6, seed=3, er_probs=(0.5,),
                       random_pos=True)
  again = data.generate('bellman_ford', 10, 6, seed=3, er_probs=(0.5,),
                        random_pos=True)
  np.testing.assert_allclose(_input(even, 'pos')[0], np.arange(10) / 10)
  pos = _input(rand, 'pos')
  assert np.all(np.diff(pos, axis=1) > 0) and pos.min() >= 0 < pos.max() <= 1
  assert not np.allclose(pos, _input(even, 'pos'))
  np.testing.assert_array_equal(pos, _input(again, 'pos'))  # Seeded.
  for name in ('A', 'adj', 's'):  # Same graphs, same sources.
    np.testing.assert_array_equal(_input(rand, name), _input(even, name))
  np.testing.assert_array_equal(rand.outputs[0].data, even.outputs[0].data)


def test_random_pos_datasets_are_cached_apart(tmp_path):
  common = dict(algorithm='bfs', split='val', size=8, num_samples=3,
                data_dir=str(tmp_path))
  assert (data.cache_path(**common, random_pos=True)
          != data.cache_path(**common))
  rand = data.load_dataset(**common, random_pos=True)
  even = data.load_dataset(**common)
  assert not np.allclose(_input(rand, 'pos'), _input(even, 'pos'))
  assert len(os.listdir(tmp_path)) == 2
