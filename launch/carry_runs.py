"""Carries the table's unfinished runs from one machine to the next.

The run folders (``/work/runs/dear_cpu`` by default) live outside the
repository and do not survive a new machine, while a ``nar`` run of a
long-trajectory algorithm (dag_shortest_paths, dfs, scc) needs about three
hours on one core, longer than one sitting. So, through the repository
(``results/carry_runs.sh``):

* :func:`pack` (before stopping, with the workers stopped; commit what it
  writes) writes, for each run that has a committed checkpoint and no
  ``results.json``, ``<run>.tar.gz`` into the carry folder (default
  ``results/dear_cpu/unfinished``) holding its ``config.json``,
  ``history.jsonl``, ``segments.jsonl`` (the code of each training
  segment) and newest checkpoint (about 5 MB), and removes the archives of
  runs that have finished since;
* :func:`unpack` (on the next machine, before the workers resume them)
  restores each archive into the runs folder unless that run's folder is
  there already. A damaged archive (cut short, or not the run it is named
  after) restores nothing and is named.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable

#: The files of a run carried beside its config and newest checkpoint.
EXTRAS = ('history.jsonl', 'segments.jsonl')
#: The files by which orbax marks a checkpoint step as committed.
COMMITTED = ('commit_success.txt', '_CHECKPOINT_METADATA')


def newest_step(workdir: str | os.PathLike) -> int | None:
  """The newest committed checkpoint step of ``workdir`` (None: none).

  A step folder counts when its name is a number and it holds one of
  :data:`COMMITTED` (a save cut short by a kill does not).
  """
  checkpoints = pathlib.Path(workdir) / 'checkpoints'
  if not checkpoints.is_dir():
    return None
  steps = [int(d.name) for d in checkpoints.iterdir()
           if d.is_dir() and d.name.isdigit()
           and any((d / name).is_file() for name in COMMITTED)]
  return max(steps, default=None)


def _require_dir(path: pathlib.Path, what: str) -> None:
  if not path.is_dir():
    raise FileNotFoundError(f'no {what} at {path}')


def _archives(carry_dir: pathlib.Path) -> list[pathlib.Path]:
  return sorted(carry_dir.glob('*.tar.gz'))


def _run_of(archive: pathlib.Path) -> str:
  return archive.name[:-len('.tar.gz')]


def pack_run(workdir: pathlib.Path, step: int,
             carry_dir: pathlib.Path) -> pathlib.Path:
  """Writes ``<carry_dir>/<run>.tar.gz`` of ``workdir`` at ``step`` (read
  back whole before it replaces an older archive)."""
  run = workdir.name
  members = [f'{run}/config.json', f'{run}/checkpoints/{step}']
  members += [f'{run}/{extra}' for extra in EXTRAS
              if (workdir / extra).is_file()]
  archive = carry_dir / f'{run}.tar.gz'
  scratch = carry_dir / f'{run}.tar.gz.tmp'
  with tarfile.open(scratch, 'w:gz') as tar:
    for member in members:
      tar.add(workdir.parent / member, arcname=member)
  with tarfile.open(scratch, 'r:gz') as tar:
    tar.getmembers()
  os.replace(scratch, archive)
  return archive


def pack(runs_dir: str | os.PathLike, carry_dir: str | os.PathLike, *,
         log: Callable[[str], None] = print) -> list[str]:
  """Packs every unfinished run of ``runs_dir`` that has a committed
  checkpoint into ``carry_dir``, and removes the archives of runs that
  have finished since.

  Returns:
    The runs packed.

  Raises:
    FileNotFoundError: ``runs_dir`` is not a folder.
  """
  runs_dir, carry_dir = pathlib.Path(runs_dir), pathlib.Path(carry_dir)
  _require_dir(runs_dir, 'runs folder')
  carry_dir.mkdir(parents=True, exist_ok=True)
  for archive in _archives(carry_dir):
    run = _run_of(archive)
    if (runs_dir / run / 'results.json').is_file():
      archive.unlink()
      log(f'finished, archive removed: {run}')
  packed = []
  for workdir in sorted(runs_dir.iterdir()):
    if (workdir.name.startswith('.') or not workdir.is_dir()
        or (workdir / 'results.json').is_file()):
      continue
    step = newest_step(workdir)
    if step is None:
      continue
    archive = pack_run(workdir, step, carry_dir)
    log(f'packed {workdir.name} at step {step} -> {archive}')
    packed.append(workdir.name)
  return packed


def _extract(archive: pathlib.Path, into: pathlib.Path) -> None:
  """Extracts ``archive`` into ``into``, refusing members that would land
  outside it (tarfile's ``data`` filter, where this Python has it)."""
  with tarfile.open(archive, 'r:gz') as tar:
    if hasattr(tarfile, 'data_filter'):
      tar.extractall(into, filter='data')
    else:  # Pythons before 3.10.12 and 3.11.4
      tar.extractall(into)


def unpack_run(archive: pathlib.Path, runs_dir: pathlib.Path) -> str | None:
  """Restores ``archive`` into ``runs_dir`` through a scratch folder, so a
  damaged archive leaves no half run for a worker to resume.

  Returns:
    None where it was restored, else what is wrong with the archive.
  """
  run = _run_of(archive)
  scratch = pathlib.Path(tempfile.mkdtemp(prefix='.unpack.', dir=runs_dir))
  try:
    try:
      _extract(archive, scratch)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
      reason = str(e).replace('\n', ' ')
      return f'{archive} is damaged, {run} not unpacked: {reason}'
    if (not (scratch / run / 'config.json').is_file()
        or newest_step(scratch / run) is None):
      return (f'{archive} holds no config.json and checkpoint of {run}, not '
              'unpacked')
    os.rename(scratch / run, runs_dir / run)
    return None
  finally:
    shutil.rmtree(scratch)


def unpack(runs_dir: str | os.PathLike, carry_dir: str | os.PathLike, *,
           log: Callable[[str], None] = print,
           warn: Callable[[str], None] = print) -> list[str]:
  """Restores every archive of ``carry_dir`` into ``runs_dir`` (created if
  need be) whose run has no folder there yet.

  Args:
    runs_dir: the folder of run workdirs.
    carry_dir: the archives.
    log: called with one line per archive restored or kept.
    warn: called with ``error: ...`` per damaged archive.

  Returns:
    The damaged archives (each named through ``warn``).

  Raises:
    FileNotFoundError: ``carry_dir`` is not a folder.
  """
  runs_dir, carry_dir = pathlib.Path(runs_dir), pathlib.Path(carry_dir)
  _require_dir(carry_dir, 'folder of carried runs')
  runs_dir.mkdir(parents=True, exist_ok=True)
  damaged = []
  for archive in _archives(carry_dir):
    run = _run_of(archive)
    if (runs_dir / run).exists():
      log(f'kept {runs_dir / run} (already there; {archive} not unpacked)')
      continue
    problem = unpack_run(archive, runs_dir)
    if problem:
      warn(f'error: {problem}')
      damaged.append(str(archive))
    else:
      log(f'unpacked {run} -> {runs_dir / run}')
  return damaged
