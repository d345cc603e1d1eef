"""Which code produced a result: the git commit of the checkout, if any.

Runs of one results table can span several sittings and several commits;
each ``results.json`` and ``eval_results.json`` records the code that wrote
it, so a table can say which rows came from which code.
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
