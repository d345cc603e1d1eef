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
from collections.abc import Sequence
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
  return {'commit': commit, 'dirty': dirty,
          'packages': package_versions(_PACKAGES)}


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
  """The installed version of each named distribution (None: not
  installed)."""
  versions = {}
  for name in names:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def cpu_times() -> dict[str, Any] | None:
  """A snapshot of the CPUs this process may run on, to pass later as
  ``machine_load(since=...)``, which then says how much of those CPUs
  other processes used in between.

  The load average alone cannot say that: a job pinned to one core that
  shares it with another process, while the machine's other core idles,
  reads a load of 2 on 2 CPUs, as two jobs alone on their cores do.

  Returns:
    ``{'cpus': the CPUs of this process's affinity, 'busy': ticks those
    CPUs spent busy, 'all': ticks they counted, 'own': this process's CPU
    seconds (all its threads)}``, or None where ``/proc/stat`` or the
    affinity cannot be read (not Linux).
  """
  try:
    cpus = sorted(os.sched_getaffinity(0))
    with open('/proc/stat') as f:
      lines = f.read().splitlines()
  except (AttributeError, OSError):
    return None
  wanted = {f'cpu{c}' for c in cpus}
  busy = every = 0
  for line in lines:
    fields = line.split()
    if not fields or fields[0] not in wanted:
      continue
    ticks = [int(x) for x in fields[1:9]]  # user .. steal (guest is in user).
    idle = ticks[3] + ticks[4]  # idle, iowait
    busy += sum(ticks) - idle
    every += sum(ticks)
  times = os.times()
  return {'cpus': cpus, 'busy': busy, 'all': every,
          'own': times.user + times.system}


def others_share(before: dict[str, Any] | None,
                 after: dict[str, Any] | None) -> float | None:
  """The fraction of this process's CPUs that other processes kept busy
  between two :func:`cpu_times` snapshots: 0 when the process had them to
  itself (or left them idle), 1 when others used them all the time. None
  when a snapshot is missing, the CPUs changed or no tick passed."""
  if (not before or not after or before['cpus'] != after['cpus']
      or after['all'] <= before['all']):
    return None
  hz = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100
  own = (after['own'] - before['own']) * hz
  others = (after['busy'] - before['busy']) - own
  share = others / (after['all'] - before['all'])
  return round(min(1.0, max(0.0, share)), 3)


def machine_load(since: dict[str, Any] | None = None) -> dict[str, Any]:
  """The machine's load, to record beside a timing.

  Args:
    since: a :func:`cpu_times` snapshot taken when the timed work began.

  Returns:
    ``{'load_1min': the 1-minute load average (runnable processes, this
    one included; None where the system has none), 'cpus': CPUs of the
    machine}``; with ``since``, also ``'others_share'``
    (:func:`others_share` from ``since`` to now, None where it cannot be
    measured) and ``'usable_cpus'`` (how many CPUs this process may run
    on: 1 for a job pinned to one core).
  """
  try:
    load = round(os.getloadavg()[0], 2)
  except (AttributeError, OSError):  # Windows; an unreadable /proc.
    load = None
  record = {'load_1min': load, 'cpus': os.cpu_count()}
  if since is not None:
    now = cpu_times()
    record['others_share'] = others_share(since, now)
    record['usable_cpus'] = len(now['cpus']) if now else None
  return record


#: ``others_share`` from which a timing counts as made on shared cores.
OTHERS_SHARE_LIMIT = 0.25


def shared_cores(load: dict[str, Any] | None) -> bool:
  """Whether a :func:`machine_load` record shows that other jobs shared the
  cores, so that a time measured under it is slower than the model alone:
  other processes kept at least ``OTHERS_SHARE_LIMIT`` of this process's
  CPUs busy, or, where that share was not recorded (older results files,
  not Linux), the 1-minute load average exceeds the CPUs by at least a
  half. False for a missing or incomplete record."""
  if not load:
    return False
  share = load.get('others_share')
  if share is not None:  # Busy CPUs this process could not use do not count.
    return share >= OTHERS_SHARE_LIMIT
  if load.get('load_1min') is None or not load.get('cpus'):
    return False
  return load['load_1min'] >= load['cpus'] + 0.5


def describe(load: dict[str, Any]) -> str:
  """A :func:`machine_load` record in words, for a log line, e.g. ``load
  2.1 on 2 CPUs; others used 48% of its 1 CPU``."""
  text = f'load {load.get("load_1min")} on {load.get("cpus")} CPUs'
  if load.get('others_share') is not None:
    usable = load.get('usable_cpus')
    text += (f'; others used {100 * load["others_share"]:.0f}% of its '
             f'{usable} CPU{"" if usable == 1 else "s"}')
  return text
