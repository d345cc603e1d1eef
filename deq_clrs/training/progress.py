"""Progress where a run would otherwise be silent: compiling and warm-up.

On a CPU, XLA compiles a training step or an evaluation pass for a minute or
more, and the first steps of a run are slower than the rest; the step log
and its ETA only start once steps are timed. Two pieces fill that gap:

* :class:`Heartbeat`: a background thread that, while the run is in a named
  phase (``'compiling the training step for 32 graphs of 12 nodes'``),
  logs the phase and its elapsed time whenever nothing else was logged for
  ``interval`` seconds (30 by default).
* :class:`CompileLog`: counts what JAX compiles and what it loads from the
  persistent compilation cache (``jax.monitoring`` events), so the log says
  when a compiled program came from the cache and how long compiling took.

:func:`enable_compilation_cache` turns on JAX's own persistent cache
(``jax_compilation_cache_dir``), so that a resumed or repeated run with the
same shapes loads its programs instead of compiling them again.

The step log itself: :class:`Eta` (time left, from stretches that compiled
nothing), :class:`Window` (steps per second between log lines),
:func:`summary_writer` and :func:`log_scalars` (TensorBoard, process 0
only), :func:`named` (a call named to the heartbeat) and
:func:`quiet_orbax_logs`.
"""

from __future__ import annotations

import dataclasses
import logging as pylogging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging

# jax.monitoring events (jax/_src/dispatch.py and jax/_src/compiler.py).
BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
CACHE_HIT_EVENT = '/jax/compilation_cache/cache_hits'


def enable_compilation_cache(directory: str) -> str | None:
  """Turns on JAX's persistent compilation cache in ``directory``.

  Programs that took at least JAX's threshold (one second) to compile are
  written there and loaded, instead of compiled, by any later process that
  builds the same program (same shapes, code, JAX version and backend).

  A cache directory the process already has (``JAX_COMPILATION_CACHE_DIR``,
  or set by the caller, as the test suite does) is kept: JAX fixes the
  directory at the first compilation, so a later change would not act.

  Args:
    directory: the cache directory (``~`` expanded, created if missing); an
      empty string leaves the cache as it is (off unless something else
      turned it on).

  Returns:
    The absolute directory in use, or None when the cache is off.
  """
  current = _cache_dir()
  if current:
    logging.info('persistent compilation cache: %s (set before this run)',
                 current)
    return current
  if not directory:
    return None
  directory = os.path.abspath(os.path.expanduser(directory))
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as error:
    logging.warning('persistent compilation cache off: cannot create %s '
                    '(%s)', directory, error.strerror or error)
    return None
  _set_cache_dir(directory)
  logging.info('persistent compilation cache: %s (a rerun or resume with the '
               'same shapes loads its compiled programs from there; '
               '--config.compilation_cache_dir= turns it off)', directory)
  return directory


def _cache_dir() -> str | None:
  return jax.config.jax_compilation_cache_dir


def _set_cache_dir(directory: str) -> None:
  jax.config.update('jax_compilation_cache_dir', directory)


@dataclasses.dataclass
class Compiled:
  """What JAX compiled (or loaded from the persistent cache) in a stretch.

  Attributes:
    compiled: programs compiled by XLA.
    cached: programs loaded from the persistent cache instead.
    seconds: time spent in XLA's compile or cache load, all programs.
  """
  compiled: int = 0
  cached: int = 0
  seconds: float = 0.0

  def describe(self) -> str:
    """``'2 programs compiled, 1 loaded from the persistent cache (41 s)'``;
    empty if nothing was compiled."""
    parts = []
    if self.compiled:
      parts.append(f'{self.compiled} program'
                   f'{"s" if self.compiled > 1 else ""} compiled')
    if self.cached:
      parts.append(f'{self.cached} loaded from the persistent compilation '
                   f'cache')
    if not parts:
      return ''
    return f'{", ".join(parts)} ({self.seconds:.0f} s)'


class CompileLog:
  """Counts XLA compilations and persistent-cache loads, from the moment
  it is opened (a context manager) until it is closed.

  Every load from the persistent cache is counted; of the compilations,
  only those that took at least ``min_seconds`` (JAX also compiles many
  tiny programs, in milliseconds, that are not worth a word).
  """

  def __init__(self, min_seconds: float = 0.5):
    self.min_seconds = min_seconds
    self._lock = threading.Lock()
    self._pending_hits = 0
    self._current = Compiled()

  def __enter__(self) -> CompileLog:
    jax.monitoring.register_event_listener(self._on_event)
    jax.monitoring.register_event_duration_secs_listener(self._on_duration)
    return self

  def __exit__(self, *exc_info) -> None:
    jax.monitoring.unregister_event_listener(self._on_event)
    jax.monitoring.unregister_event_duration_listener(self._on_duration)

  def _on_event(self, event: str, **kwargs: Any) -> None:
    del kwargs
    if event == CACHE_HIT_EVENT:
      with self._lock:
        self._pending_hits += 1

  def _on_duration(self, event: str, seconds: float, **kwargs: Any) -> None:
    del kwargs
    if event != BACKEND_COMPILE_EVENT:
      return
    with self._lock:
      # A cache hit is announced inside the compile it replaces.
      hit = self._pending_hits > 0
      self._pending_hits = max(self._pending_hits - 1, 0)
      if hit:
        self._current.cached += 1
      elif seconds >= self.min_seconds:
        self._current.compiled += 1
      else:
        return
      self._current.seconds += seconds

  def take(self) -> Compiled:
    """What was compiled since the last :meth:`take` (or the opening)."""
    with self._lock:
      taken, self._current = self._current, Compiled()
    return taken


class Heartbeat:
  """Logs the current phase while nothing else is logged.

  Used as a context manager around a run. The run names what it is doing
  with :meth:`phase` (None: nothing slow is expected, stay quiet) and calls
  :meth:`beat` whenever it logs a line of its own. A daemon thread logs
  ``'<phase> (<s> s so far)'`` once ``interval`` seconds pass without a
  line; when a phase ends, what it compiled (or loaded from the persistent
  cache) is logged in one line.

  Args:
    interval: longest silence, seconds, during a phase.
    log: receives each line (absl's ``logging.info`` by default).
    clock: seconds, monotonic (tests pass a fake).
  """

  def __init__(self, interval: float = 30.0,
               log: Callable[[str], None] | None = None,
               clock: Callable[[], float] = time.monotonic):
    self.interval = interval
    self._log = log or (lambda line: logging.info('%s', line))
    self._clock = clock
    self._lock = threading.Lock()
    self._phase: str | None = None
    self._phase_start = self._last_line = clock()
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None
    self._compiles = CompileLog()

  def __enter__(self) -> Heartbeat:
    self._compiles.__enter__()
    self._thread = threading.Thread(target=self._run, daemon=True,
                                    name='deq_clrs-heartbeat')
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self.phase(None)
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    self._compiles.__exit__(*exc_info)

  def phase(self, what: str | None) -> None:
    """Starts phase ``what`` (None: no phase); a phase that ends is
    followed by a line saying what it compiled, if anything."""
    with self._lock:
      ended, self._phase = self._phase, what
      self._phase_start = self._clock()
    if ended is not None and ended != what:
      compiled = self._compiles.take().describe()
      if compiled:
        self._emit(f'{ended}: {compiled}')

  @property
  def current(self) -> str | None:
    """The phase the run is in (None: none)."""
    return self._phase

  def beat(self) -> None:
    """Notes that the run logged a line just now."""
    with self._lock:
      self._last_line = self._clock()

  def _emit(self, line: str) -> None:
    self._log(line)
    self.beat()

  def check(self) -> None:
    """Logs the phase if ``interval`` passed without a line (the thread
    calls this about every second; tests call it directly)."""
    with self._lock:
      now = self._clock()
      due = (self._phase is not None
             and now - self._last_line >= self.interval)
      line = (f'{self._phase} ({now - self._phase_start:.0f} s so far)'
              if due else None)
    if line:
      self._emit(line)

  def _run(self) -> None:
    while not self._stop.wait(min(1.0, self.interval / 4)):
      self.check()


def quiet_orbax_logs() -> None:
  """Hides orbax's INFO lines (several per checkpoint) from absl's log."""
  def keep(record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING
            or f'{os.sep}orbax{os.sep}' not in record.pathname)
  logging.get_absl_handler().addFilter(keep)


class _NoWriter:
  """Stands in for the TensorBoard writer on processes other than 0."""

  def scalar(self, *args, **kwargs) -> None:
    del args, kwargs

  def flush(self) -> None:
    pass


def summary_writer(workdir: str, enabled: bool = True):
  if jax.process_index() != 0 or not enabled:
    return _NoWriter()
  # Imported here: it needs TensorFlow, which a run without TensorBoard
  # output does not.
  from flax.metrics import tensorboard  # pylint: disable=g-import-not-at-top
  return tensorboard.SummaryWriter(os.path.join(workdir, 'tensorboard'))


def log_scalars(writer, step: int, prefix: str,
                 values: dict[str, Any]) -> None:
  for name, value in values.items():
    if isinstance(value, (int, float)) and math.isfinite(value):
      writer.scalar(f'{prefix}/{name}', value, step)


class Eta:
  """Time left, from the stretches of training that compiled nothing.

  Training steps are dispatched without waiting for the device, so the
  time of one step says little; the time between two points where the host
  has waited for the device (the log lines, which read the loss back) says
  how long the steps between them took, validations and checkpoints
  included. A stretch in which some step compiled (its batch had a shape not
  seen before in this process: a new graph size or trajectory length) or
  the first validation ran is left out of the mean time per step, since
  compiling is paid once.
  """

  def __init__(self, total_steps: int, validated: bool):
    self.total_steps = total_steps
    self.shapes = set()
    self.seconds, self.steps = 0.0, 0
    self._validated = validated
    self._clean = True

  def start_step(self, feedback: Any) -> bool:
    """Notes the shape of the batch of the step about to be dispatched;
    returns whether it is new (the step compiles)."""
    shape = tuple(np.shape(x) for x in jax.tree_util.tree_leaves(feedback))
    new = shape not in self.shapes
    if new:
      self._clean = False
    self.shapes.add(shape)
    return new

  def validated(self) -> None:
    """Notes a validation (the first one compiles)."""
    if not self._validated:
      self._clean, self._validated = False, True

  def synced(self, steps: int, seconds: float) -> None:
    """Called where the device has finished every step dispatched so far:
    the stretch since the last such point took ``steps`` steps and
    ``seconds`` seconds."""
    if self._clean and steps > 0:
      self.seconds += seconds
      self.steps += steps
    self._clean = True

  @property
  def timed(self) -> bool:
    """Whether a stretch without compiling has been timed yet."""
    return self.steps > 0

  def text(self, step: int) -> str:
    if not self.steps:
      return 'after warm-up'
    return f'{(self.total_steps - step) * self.seconds / self.steps:.0f} s'


class Window:
  """Steps per second between log lines."""

  def __init__(self, step: int):
    self.start, self.step = time.perf_counter(), step

  def log(self, writer, step: int, total: int, metrics: dict[str, float],
          eta: Eta) -> None:
    """Logs the metrics read back after ``step`` steps (the device has
    finished them)."""
    now = time.perf_counter()
    eta.synced(step - self.step, now - self.start)
    rate = (step - self.step) / max(now - self.start, 1e-9)
    logging.info('step %d/%d  loss %.4f (mean %.4f)  %.2f steps/s  ETA %s',
                 step, total, metrics['loss'], metrics['loss_mean'], rate,
                 eta.text(step))
    writer.scalar('train/loss', metrics['loss'], step)
    writer.scalar('train/loss_mean', metrics['loss_mean'], step)
    writer.scalar('train/steps_per_second', rate, step)
    self.start, self.step = now, step


def named(heartbeat: Heartbeat, function: Callable[..., Any],
           what: str) -> Callable[..., Any]:
  """``function`` with its calls named ``what`` to the heartbeat."""
  def call(*args, **kwargs):
    heartbeat.phase(what)
    try:
      return function(*args, **kwargs)
    finally:
      heartbeat.phase(None)
  return call
