"""Tests of the checkpoints: an unreadable one is set aside in one line."""

import logging
import os
import sys
import time

import numpy as np
import pytest
from orbax.checkpoint._src import asyncio_utils as ocp_asyncio

from deq_clrs.training import checkpoints as ckpt_lib

# Many arrays, so that many reads are still in flight when the first one
# fails (each of them used to print a traceback).
_STATE = {f'w{i:02d}': np.arange(8 * (i + 1), dtype=np.float32)
          for i in range(64)}
# Whether a read is still in flight when the first fails is a race: each
# check repeats the failing restore to catch a regression almost surely.
_TRIES = 5


def _truncate_checkpoint(workdir: str, step: int) -> None:
  """Cuts every data file of a committed checkpoint in half."""
  root = os.path.join(workdir, 'checkpoints', str(step))
  for folder, _, files in os.walk(root):
    for name in files:
      if os.path.basename(folder) == 'd':
        path = os.path.join(folder, name)
        with open(path, 'r+b') as f:
          f.truncate(os.path.getsize(path) // 2)


@pytest.fixture
def damaged(tmp_path, monkeypatch):
  """A workdir with checkpoints 1 and 2, whose 2 is truncated; unraisable
  exceptions print to stderr as they do outside pytest (pytest's own hook
  would turn them into warnings)."""
  monkeypatch.setattr(sys, 'unraisablehook', sys.__unraisablehook__)
  workdir = str(tmp_path / 'run')
  checkpointer = ckpt_lib.Checkpointer(workdir, max_to_keep=3)
  checkpointer.save(1, _STATE)
  checkpointer.save(2, {k: v + 1 for k, v in _STATE.items()})
  checkpointer.close()
  _truncate_checkpoint(workdir, 2)
  return workdir


def _quiet_restores(capfd, caplog, restore, tries: int) -> list[str]:
  """Calls ``restore`` ``tries`` times; checks that nothing but log lines
  came out, and returns the warnings."""
  original = ocp_asyncio.run_sync
  capfd.readouterr()
  caplog.clear()
  caplog.set_level(logging.WARNING)
  for _ in range(tries):
    restore()
  # Reads still in flight printed their tracebacks late.
  time.sleep(0.5)
  out, err = capfd.readouterr()
  output = '\n'.join([err, out] + [r.getMessage() for r in caplog.records])
  assert 'Traceback' not in output
  assert 'Event loop is closed' not in output
  assert ocp_asyncio.run_sync is original  # put back after the restores
  return [r.getMessage() for r in caplog.records
          if r.levelno >= logging.WARNING]


def _check_restored(restored):
  state, step = restored
  assert step == 1
  for key, value in _STATE.items():
    np.testing.assert_array_equal(state[key], value)


def test_an_unreadable_checkpoint_is_set_aside_in_one_warning_line(
    damaged, capfd, caplog):
  checkpointer = ckpt_lib.Checkpointer(damaged, max_to_keep=3)
  warnings = _quiet_restores(
      capfd, caplog,
      lambda: _check_restored(checkpointer.restore_newest_readable(_STATE)),
      tries=1)
  checkpointer.close()
  source = os.path.join(damaged, 'checkpoints', '2')
  target = os.path.join(damaged, ckpt_lib.UNREADABLE_DIR, '2')
  (warning,) = warnings
  assert warning.startswith(f'checkpoint {source} is unreadable (ValueError: ')
  assert warning.endswith(f'moved it to {target} and trying the previous one')
  assert os.path.isdir(target) and not os.path.exists(source)


def test_skipping_an_unreadable_checkpoint_is_quiet(damaged, capfd, caplog):
  checkpointer = ckpt_lib.Checkpointer(damaged, max_to_keep=3)
  warnings = _quiet_restores(
      capfd, caplog,
      lambda: _check_restored(
          checkpointer.restore_newest_readable(_STATE, set_aside=False)),
      tries=_TRIES)
  checkpointer.close()
  assert len(warnings) == _TRIES
  source = os.path.join(damaged, 'checkpoints', '2')
  assert all(w.startswith(f'checkpoint {source} is unreadable (ValueError: ')
             and w.endswith('; trying the previous one') for w in warnings)
  assert checkpointer.all_steps() == [1, 2]  # left where it was


def test_restoring_an_unreadable_step_raises_its_error_quietly(damaged,
                                                                capfd,
                                                                caplog):
  checkpointer = ckpt_lib.Checkpointer(damaged, max_to_keep=3)

  def restore():
    with pytest.raises(ValueError, match='OUT_OF_RANGE'):
      checkpointer.restore(_STATE, 2)

  assert not _quiet_restores(capfd, caplog, restore, tries=_TRIES)
  checkpointer.close()
