"""Tests of the progress lines: heartbeat, compile counts, cache set-up."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from deq_clrs.training import progress


class FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self) -> float:
    return self.now


def _heartbeat(interval=30.0):
  lines, clock = [], FakeClock()
  beat = progress.Heartbeat(interval=interval, log=lines.append, clock=clock)
  return beat, lines, clock


def test_heartbeat_logs_phase_after_interval_of_silence():
  beat, lines, clock = _heartbeat()
  beat.phase('compiling the training step for 4 graphs of 8 nodes')
  clock.now += 29.0
  beat.check()
  assert lines == []
  clock.now += 1.0
  beat.check()
  assert lines == ['compiling the training step for 4 graphs of 8 nodes '
                   '(30 s so far)']
  # The next line comes one interval after the last one, not at once.
  clock.now += 10.0
  beat.check()
  assert len(lines) == 1
  clock.now += 20.0
  beat.check()
  assert lines[-1].endswith('(60 s so far)')


def test_heartbeat_is_silent_without_phase_and_after_own_lines():
  beat, lines, clock = _heartbeat()
  clock.now += 100.0
  beat.check()
  assert lines == []  # No phase: nothing slow is expected.
  beat.phase('validating at step 0')
  clock.now += 25.0
  beat.beat()  # The run logged a line of its own.
  clock.now += 25.0
  beat.check()
  assert lines == []
  clock.now += 5.0
  beat.check()
  assert lines == ['validating at step 0 (55 s so far)']
  beat.phase(None)
  clock.now += 100.0
  beat.check()
  assert len(lines) == 1


def test_heartbeat_thread_logs_within_interval():
  lines = []
  with progress.Heartbeat(interval=0.2, log=lines.append) as beat:
    beat.phase('warming up')
    deadline = time.monotonic() + 10.0
    while not lines and time.monotonic() < deadline:
      time.sleep(0.05)
  assert lines and lines[0].startswith('warming up (')


def _fresh_program(width: int):
  """A jitted function whose program no other test compiles."""
  weights = np.linspace(0.0, 1.0, width, dtype=np.float32)

  @jax.jit
  def f(x):
    for _ in range(3):
      x = jnp.tanh(x * weights + width)
    return x
  return f, jnp.ones(width, jnp.float32)


def test_compile_log_counts_compiles_and_cache_loads():
  # conftest.py gives the session a persistent cache and caches every
  # program, however quickly it compiles.
  assert jax.config.jax_compilation_cache_dir
  width = 1000 + int(time.time_ns() % 100000)  # not in the cache yet
  with progress.CompileLog(min_seconds=0.0) as log:
    f, x = _fresh_program(width)
    f(x).block_until_ready()
    first = log.take()
    jax.clear_caches()  # Forget the in-memory executable.
    f, x = _fresh_program(width)
    f(x).block_until_ready()
    second = log.take()
  assert first.compiled >= 1 and first.cached == 0
  assert second.cached >= 1 and second.compiled == 0
  assert 'loaded from the persistent compilation cache' in second.describe()
  assert progress.Compiled().describe() == ''


def test_compile_log_counts_every_cache_load_but_only_slow_compiles():
  width = 3000 + int(time.time_ns() % 100000)
  with progress.CompileLog(min_seconds=1e6) as log:  # no compile is slow
    f, x = _fresh_program(width)
    f(x).block_until_ready()
    compiled = log.take()
    jax.clear_caches()
    f, x = _fresh_program(width)
    f(x).block_until_ready()
    loaded = log.take()
  assert compiled.compiled == 0 and compiled.cached == 0
  assert loaded.cached >= 1


def test_heartbeat_says_what_a_phase_compiled():
  lines = []
  width = 2000 + int(time.time_ns() % 100000)
  with progress.Heartbeat(log=lines.append) as beat:
    beat._compiles.min_seconds = 0.0  # pylint: disable=protected-access
    beat.phase('compiling a test program')
    f, x = _fresh_program(width)
    f(x).block_until_ready()
    beat.phase(None)
  assert any(line.startswith('compiling a test program: ') and
             'compiled' in line for line in lines), lines


def test_enable_compilation_cache_keeps_an_existing_directory(tmp_path):
  current = jax.config.jax_compilation_cache_dir
  assert progress.enable_compilation_cache(str(tmp_path / 'x')) == current
  assert not (tmp_path / 'x').exists()


def test_enable_compilation_cache_sets_and_creates(tmp_path, monkeypatch):
  updates = []
  monkeypatch.setattr(progress, '_cache_dir', lambda: None)
  monkeypatch.setattr(progress, '_set_cache_dir', updates.append)
  assert progress.enable_compilation_cache('') is None
  target = tmp_path / 'cache' / 'xla'
  assert progress.enable_compilation_cache(str(target)) == str(target)
  assert target.is_dir()
  assert updates == [str(target)]


def test_enable_compilation_cache_unwritable_turns_off(tmp_path,
                                                       monkeypatch):
  updates = []
  monkeypatch.setattr(progress, '_cache_dir', lambda: None)
  monkeypatch.setattr(progress, '_set_cache_dir', updates.append)
  (tmp_path / 'file').write_text('not a directory')
  assert progress.enable_compilation_cache(str(tmp_path / 'file' / 'x')) is None
  assert updates == []


def test_eta_counts_only_stretches_that_compiled_nothing():
  # Steps are dispatched without waiting, so the ETA is timed between the
  # points where the host waited for the device (the log lines). Timing
  # each step instead said "ETA 2 s" with 25 minutes left on a resumed
  # floyd_warshall run: its timed steps had only been dispatched.
  eta = progress.Eta(total_steps=20, validated=False)

  def steps(*nodes):
    for n in nodes:
      eta.start_step((np.zeros((4, n)),))

  steps(8, 8)  # the first step compiles
  eta.synced(2, seconds=100.0)
  assert eta.text(2) == 'after warm-up'
  steps(8, 8)
  eta.synced(2, seconds=4.0)  # 2 s per step
  assert eta.text(4) == f'{16 * 2.0:.0f} s'
  steps(8, 9)  # a new shape compiles: this stretch is left out
  eta.synced(2, seconds=56.0)
  assert eta.text(6) == f'{14 * 2.0:.0f} s'
  steps(8, 9)
  eta.validated()  # the first validation compiles: left out
  eta.synced(2, seconds=90.0)
  assert eta.text(8) == f'{12 * 2.0:.0f} s'
  steps(9, 8, 9, 8)
  eta.validated()  # later validations are part of the cost per step
  eta.synced(4, seconds=16.0)  # 16 s for 4 steps
  assert eta.text(12) == f'{8 * (4.0 + 16.0) / 6:.0f} s'
  eta.synced(0, seconds=34.0)  # no steps since the last sync: nothing to add
  assert eta.text(12) == f'{8 * (4.0 + 16.0) / 6:.0f} s'


def test_eta_after_a_resume_waits_for_a_stretch_without_compiling():
  eta = progress.Eta(total_steps=5000, validated=False)
  for _ in range(50):  # this process has compiled nothing yet
    eta.start_step((np.zeros((4, 8)),))
  eta.synced(50, seconds=185.0)
  assert eta.text(4300) == 'after warm-up'
