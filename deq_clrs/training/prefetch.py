"""Training batches prepared on a background thread, ahead of the step.

On an accelerator the training step runs on the device while the host
draws, prepares and transfers the next batches; without a thread of its
own the host does that work only once the step loop asks for the batch.
:class:`Prefetcher` runs ``make(step)`` for the coming steps on one
background thread, at most ``depth`` steps ahead, and hands the results
out in step order. Batches are a function of the step
(:class:`~deq_clrs.training.data.TrainStream`), so prefetching changes
when a batch is made, never which batch a step gets.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any
from typing import Generic
from typing import TypeVar

T = TypeVar('T')

_DONE = object()


class Prefetcher(Generic[T]):
  """``make(step)`` for ``step`` in ``[start, stop)``, made ahead in order.

  Use as a context manager (the thread stops on exit) and call
  :meth:`get` with consecutive steps. An exception raised by ``make`` is
  raised again by the :meth:`get` of its step. With ``depth == 0`` nothing
  runs ahead: :meth:`get` calls ``make`` itself.
  """

  def __init__(self, make: Callable[[int], T], start: int, stop: int,
               depth: int = 2):
    if depth < 0:
      raise ValueError(f'prefetch depth must be >= 0, not {depth}')
    self._make = make
    self._next = start
    self._stop = stop
    self._depth = depth
    self._queue: queue.Queue[tuple[int, Any, BaseException | None]] = (
        queue.Queue(maxsize=max(depth, 1)))
    self._closed = threading.Event()
    self._thread = None
    if depth and start < stop:
      self._thread = threading.Thread(target=self._work, args=(start,),
                                      name='deq_clrs-prefetch', daemon=True)
      self._thread.start()

  def _put(self, item: tuple[int, Any, BaseException | None]) -> bool:
    """Queues ``item`` unless closed first; True if queued."""
    while not self._closed.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _work(self, step: int) -> None:
    while step < self._stop:
      try:
        item = (step, self._make(step), None)
      except BaseException as e:  # noqa: BLE001 (re-raised by get)
        self._put((step, _DONE, e))
        return
      if not self._put(item):
        return
      step += 1

  def get(self, step: int) -> T:
    """The result of ``make(step)``; ``step`` must be the next step."""
    if step != self._next or step >= self._stop:
      raise ValueError(f'asked for step {step}; the next prefetched step is '
                       f'{self._next} (of [.., {self._stop}))')
    self._next += 1
    if self._thread is None:
      return self._make(step)
    made, value, error = self._queue.get()
    if error is not None:
      raise error
    assert made == step, (made, step)
    return value

  def close(self) -> None:
    """Stops the thread (what it made and nobody took is dropped)."""
    self._closed.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None

  def __enter__(self) -> Prefetcher[T]:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
