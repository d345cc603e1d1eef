"""Unfinished runs are packed at their newest committed checkpoint and
restored whole, or not at all."""

import os
import pathlib
import tarfile

import pytest

from launch import carry_runs


def _run(runs: pathlib.Path, name: str, finished: bool = False
         ) -> pathlib.Path:
  workdir = runs / name
  workdir.mkdir(parents=True)
  if finished:
    (workdir / 'results.json').write_text('{}')
  return workdir


def _checkpoint(workdir: pathlib.Path, step: int, committed=True) -> None:
  step_dir = workdir / 'checkpoints' / str(step) / 'default'
  step_dir.mkdir(parents=True)
  (step_dir / 'blob').write_text(f'state at {step}')
  if committed:
    (step_dir.parent / 'commit_success.txt').write_text('')


def _quiet(_: str) -> None:
  pass


def test_the_newest_committed_step_counts(tmp_path):
  assert carry_runs.newest_step(tmp_path) is None
  _checkpoint(tmp_path, 250)
  _checkpoint(tmp_path, 2750)
  _checkpoint(tmp_path, 3000, committed=False)  # Cut short by a kill.
  (tmp_path / 'checkpoints' / '2750.orbax-checkpoint-tmp-1').mkdir()
  assert carry_runs.newest_step(tmp_path) == 2750
  # Orbax's newer marker counts too.
  (tmp_path / 'checkpoints' / '3000' / '_CHECKPOINT_METADATA').write_text('')
  assert carry_runs.newest_step(tmp_path) == 3000


def test_carry_runs_packs_the_newest_checkpoint_of_unfinished_runs(tmp_path):
  runs = tmp_path / 'runs'
  dfs = _run(runs, 'dfs-nar-s0')
  _run(runs, 'empty-nar-s0')
  (dfs / 'config.json').write_text('{"seed": 0}')
  (dfs / 'history.jsonl').write_text('{"step": 250}\n')
  (dfs / 'segments.jsonl').write_text('{"from_step": 0}\n')
  (dfs / 'job.log').write_text('not carried')
  _checkpoint(dfs, 250)
  _checkpoint(dfs, 2750)
  _checkpoint(dfs, 3000, committed=False)  # Cut short by a kill.
  (dfs / 'checkpoints' / '2750.orbax-checkpoint-tmp-1').mkdir()
  bfs = _run(runs, 'bfs-dear-s1', finished=True)
  (bfs / 'config.json').write_text('{}')
  _checkpoint(bfs, 5000)
  carry = tmp_path / 'carry'
  carry.mkdir()
  (carry / 'bfs-dear-s1.tar.gz').write_text('stale: the run has finished')
  lines = []
  assert carry_runs.pack(runs, carry, log=lines.append) == ['dfs-nar-s0']
  assert 'finished, archive removed: bfs-dear-s1' in lines
  assert any(line.startswith('packed dfs-nar-s0 at step 2750')
             for line in lines)
  assert sorted(os.listdir(carry)) == ['dfs-nar-s0.tar.gz']

  fresh = tmp_path / 'fresh'
  assert carry_runs.unpack(fresh, carry, log=_quiet) == []
  assert sorted(os.listdir(fresh)) == ['dfs-nar-s0']
  restored = fresh / 'dfs-nar-s0'
  assert sorted(os.listdir(restored)) == ['checkpoints', 'config.json',
                                          'history.jsonl', 'segments.jsonl']
  assert (restored / 'segments.jsonl').read_text() == '{"from_step": 0}\n'
  assert os.listdir(restored / 'checkpoints') == ['2750']
  assert (restored / 'checkpoints' / '2750' / 'default' /
          'blob').read_text() == 'state at 2750'
  assert (restored / 'history.jsonl').read_text() == '{"step": 250}\n'
  # A run folder already there is never overwritten.
  (restored / 'history.jsonl').write_text('newer')
  lines = []
  carry_runs.unpack(fresh, carry, log=lines.append)
  assert lines[0].startswith(f'kept {restored} (already there')
  assert (restored / 'history.jsonl').read_text() == 'newer'


def test_carry_runs_unpacks_nothing_of_a_damaged_archive(tmp_path):
  runs = tmp_path / 'runs'
  for run in ('dfs-nar-s0', 'scc-nar-s1'):
    workdir = _run(runs, run)
    (workdir / 'config.json').write_text('{}')
    _checkpoint(workdir, 500)
  carry = tmp_path / 'carry'
  carry_runs.pack(runs, carry, log=_quiet)
  # One archive cut short (as by a failed copy), one named after another run.
  whole = (carry / 'dfs-nar-s0.tar.gz').read_bytes()
  (carry / 'dfs-nar-s0.tar.gz').write_bytes(whole[:len(whole) // 2])
  (carry / 'scc-nar-s1.tar.gz').rename(carry / 'scc-nar-s2.tar.gz')
  (carry / 'bfs-nar-s0.tar.gz').write_bytes(whole)
  fresh = tmp_path / 'fresh'
  errors = []
  damaged = carry_runs.unpack(fresh, carry, log=_quiet, warn=errors.append)
  assert damaged == [str(carry / n) for n in (
      'bfs-nar-s0.tar.gz', 'dfs-nar-s0.tar.gz', 'scc-nar-s2.tar.gz')]
  assert len(errors) == 3, errors
  assert errors[0].startswith(
      f'error: {carry}/bfs-nar-s0.tar.gz holds no config.json and checkpoint '
      'of bfs-nar-s0')
  assert errors[1].startswith(
      f'error: {carry}/dfs-nar-s0.tar.gz is damaged, dfs-nar-s0 not unpacked')
  assert errors[2].startswith(f'error: {carry}/scc-nar-s2.tar.gz holds no')
  assert all('\n' not in e for e in errors)
  # No half run left for the worker to resume, and no scratch folder.
  assert os.listdir(fresh) == []


def test_an_archive_cannot_write_outside_the_runs_folder(tmp_path):
  carry = tmp_path / 'carry'
  carry.mkdir()
  outside = tmp_path / 'outside.txt'
  with tarfile.open(carry / 'x-nar-s0.tar.gz', 'w:gz') as tar:
    info = tarfile.TarInfo('../../outside.txt')
    tar.addfile(info)
  errors = []
  carry_runs.unpack(tmp_path / 'runs', carry, log=_quiet, warn=errors.append)
  assert not outside.exists()
  assert len(errors) == 1 and 'x-nar-s0 not unpacked' in errors[0]


def test_carry_runs_refuses_missing_folders(tmp_path):
  with pytest.raises(FileNotFoundError, match='no runs folder at'):
    carry_runs.pack(tmp_path / 'nowhere', tmp_path / 'carry')
  with pytest.raises(FileNotFoundError,
                     match='no folder of carried runs at'):
    carry_runs.unpack(tmp_path / 'runs', tmp_path / 'nowhere')
