"""Which code produced a result, and how busy the machine was when timed.

Runs of one results table can span several sittings and several commits;
each ``results.json`` and ``eval_results.json`` records the code that wrote
it, so a table can say which rows came from which code. Timings record the
machine's load beside them, so that a time measured while other jobs shared
the cores is not read as the model's speed.
"""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from typing import Any

_PACKAGES = ('jax', 'flax', 'optax', 'dm-clrs', 'jaxopt')


def _git(directory: str, *args: str) -> str | None:
  try:
    run = subprocess.run(['git', '-C', directory, *args], capture_output=True,
                         text=True, timeout=30, check=False)
  except (OSError, subprocess.TimeoutExpired):
    return None
  return run.stdout.strip() if run.returncode == 0 else None


def code_version(directory: str | None = None) -> dict[str, Any]:
  """The code behind a result.

  Args:
    directory: a folder of the checkout (default: this package's).

  Returns:
    ``{'commit': hash or None, 'dirty': bool or None, 'packages': {name:
    version}}``. ``commit`` is None outside a git checkout (an installed
    wheel); ``dirty`` says whether tracked files differ from the commit.
  """
  directory = directory or os.path.dirname(os.path.abspath(__file__))
  commit = _git(directory, 'rev-parse', 'HEAD')
  dirty = None
  if commit is not None:
    status = _git(directory, 'status', '--porcelain', '--untracked-files=no')
    dirty = None if status is None else bool(status)
  packages = {}
  for name in _PACKAGES:
    try:
      packages[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      packages[name] = None
  return {'commit': commit, 'dirty': dirty, 'packages': packages}


def machine_load() -> dict[str, Any]:
  """The machine's load, to record beside a timing.

  Returns:
    ``{'load_1min': the 1-minute load average (runnable processes, this
    one included; None where the system has none), 'cpus': CPUs of the
    machine}``.
  """
  try:
    load = round(os.getloadavg()[0], 2)
  except (AttributeError, OSError):  # Windows; an unreadable /proc.
    load = None
  return {'load_1min': load, 'cpus': os.cpu_count()}


def shared_cores(load: dict[str, Any] | None) -> bool:
  """Whether a :func:`machine_load` record shows more runnable processes
  than CPUs (by at least a half, on the 1-minute average): other jobs then
  shared the cores, and a time measured under it is slower than the model
  alone. False for a missing or incomplete record."""
  if not load or load.get('load_1min') is None or not load.get('cpus'):
    return False
  return load['load_1min'] >= load['cpus'] + 0.5
