"""The background batch thread: order, look-ahead bound, errors, closing."""

import threading
import time

import numpy as np
import pytest

from deq_clrs.training import data as data_lib
from deq_clrs.training import prefetch


class Recorder:
  """``make`` that records which steps it made, from which thread."""

  def __init__(self, fail_at=None):
    self.made = []
    self.threads = set()
    self.fail_at = fail_at
    self.lock = threading.Lock()

  def __call__(self, step):
    if step == self.fail_at:
      raise RuntimeError(f'bad batch {step}')
    with self.lock:
      self.made.append(step)
      self.threads.add(threading.current_thread().name)
    return step * 10


def _wait_for(condition, seconds=5.0):
  end = time.monotonic() + seconds
  while not condition() and time.monotonic() < end:
    time.sleep(0.01)
  return condition()


@pytest.mark.parametrize('depth', [0, 1, 3])
def test_steps_come_in_order_with_what_make_gives(depth):
  make = Recorder()
  with prefetch.Prefetcher(make, 5, 12, depth=depth) as p:
    got = [p.get(s) for s in range(5, 12)]
  assert got == [s * 10 for s in range(5, 12)]
  assert make.made == list(range(5, 12))  # each step made once, in order
  want_thread = 'deq_clrs-prefetch' if depth else threading.current_thread(
      ).name
  assert make.threads == {want_thread}


def test_it_runs_at_most_depth_ahead():
  make = Recorder()
  with prefetch.Prefetcher(make, 0, 100, depth=3) as p:
    # Nothing taken: the queue holds 3 and the thread waits with a 4th.
    assert _wait_for(lambda: len(make.made) == 4)
    time.sleep(0.2)
    assert len(make.made) == 4
    p.get(0)
    assert _wait_for(lambda: len(make.made) == 5)
    time.sleep(0.2)
    assert len(make.made) == 5


def test_an_error_in_make_is_raised_at_its_step():
  with prefetch.Prefetcher(Recorder(fail_at=2), 0, 5, depth=2) as p:
    assert p.get(0) == 0 and p.get(1) == 10
    with pytest.raises(RuntimeError, match='bad batch 2'):
      p.get(2)


def test_steps_must_be_consecutive_and_in_range():
  with prefetch.Prefetcher(Recorder(), 0, 2, depth=1) as p:
    with pytest.raises(ValueError, match='next prefetched step is 0'):
      p.get(1)
    p.get(0)
    p.get(1)
    with pytest.raises(ValueError, match='asked for step 2'):
      p.get(2)
  with pytest.raises(ValueError, match='depth must be >= 0'):
    prefetch.Prefetcher(Recorder(), 0, 2, depth=-1)


def test_closing_early_stops_the_thread():
  p = prefetch.Prefetcher(Recorder(), 0, 10**6, depth=2)
  p.get(0)
  thread = p._thread
  p.close()
  assert not thread.is_alive()


def test_prefetched_batches_are_the_streams_batches(tmp_path):
  stream = data_lib.TrainStream.load('bfs', (5, 6), 6, 3, seed=4,
                                     data_dir=str(tmp_path))
  with prefetch.Prefetcher(stream.batch, 0, 6, depth=2) as p:
    for step in range(6):
      got, want = p.get(step), stream.batch(step)
      for a, b in zip(got.outputs + got.features.inputs,
                      want.outputs + want.features.inputs):
        np.testing.assert_array_equal(a.data, b.data)
