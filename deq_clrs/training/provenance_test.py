"""Tests of the code-version record of results files."""

import os
import subprocess
import sys
import time

import pytest

from deq_clrs.training import provenance


def _git(path, *args):
  subprocess.run(['git', '-C', str(path), *args], check=True,
                 capture_output=True)


def test_commit_and_dirty_state_of_a_checkout(tmp_path):
  _git(tmp_path, 'init', '-q')
  (tmp_path / 'a.py').write_text('x = 1\n')
  _git(tmp_path, 'add', 'a.py')
  _git(tmp_path, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm',
       'one')
  head = subprocess.run(['git', '-C', str(tmp_path), 'rev-parse', 'HEAD'],
                        capture_output=True, text=True, check=True)
  clean = provenance.code_version(str(tmp_path))
  assert clean['commit'] == head.stdout.strip()
  assert clean['dirty'] is False
  (tmp_path / 'a.py').write_text('x = 2\n')
  assert provenance.code_version(str(tmp_path))['dirty'] is True
  # Untracked files (caches, run outputs) do not make a checkout dirty.
  (tmp_path / 'b.txt').write_text('')
  (tmp_path / 'a.py').write_text('x = 1\n')
  assert provenance.code_version(str(tmp_path))['dirty'] is False


def test_outside_a_checkout_there_is_no_commit(tmp_path):
  version = provenance.code_version(str(tmp_path))
  assert version['commit'] is None and version['dirty'] is None
  assert version['packages']['jax']


def test_the_package_reports_its_own_checkout():
  version = provenance.code_version()
  assert version['commit'] is None or len(version['commit']) == 40


def test_machine_load_is_this_machines():
  load = provenance.machine_load()
  assert load['cpus'] == os.cpu_count()
  assert load['load_1min'] is None or load['load_1min'] >= 0


def _snapshot(busy, every, own, cpus=(0,)):
  return {'cpus': list(cpus), 'busy': busy, 'all': every, 'own': own}


def test_others_share_is_the_busy_time_that_was_not_this_process():
  hz = os.sysconf('SC_CLK_TCK')
  before = _snapshot(1000, 5000, 2.0)
  # 400 ticks passed; the CPU was busy 300 of them, 100 of them this
  # process's (1 s at 100 ticks/s is hz ticks): others had 200 of 400.
  after = _snapshot(1300, 5400, 2.0 + 100 / hz)
  assert provenance.others_share(before, after) == pytest.approx(0.5)
  # Alone: every busy tick was this process's.
  alone = _snapshot(1300, 5400, 2.0 + 300 / hz)
  assert provenance.others_share(before, alone) == pytest.approx(0.0)
  # Clock-tick rounding cannot make it negative or above one.
  assert provenance.others_share(before, _snapshot(1300, 5400, 9.0)) == 0.0
  assert provenance.others_share(before, _snapshot(1400, 5400, 2.0)) == 1.0
  # Unmeasurable: no snapshot, other CPUs, no tick passed.
  assert provenance.others_share(None, after) is None
  assert provenance.others_share(before, None) is None
  assert provenance.others_share(before, _snapshot(1300, 5400, 2.0, (0, 1))) \
      is None
  assert provenance.others_share(before, before) is None


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity')
                    or not os.path.exists('/proc/stat'),
                    reason='needs Linux CPU affinity and /proc/stat')
def test_a_process_busy_on_the_same_pinned_core_is_seen():
  """The case the load average misses: a job pinned to one core that
  another process shares, whatever the machine's other cores do."""
  mask = os.sched_getaffinity(0)
  core = min(mask)
  busy = subprocess.Popen(
      [sys.executable, '-c', 'while True: pass'],
      preexec_fn=lambda: os.sched_setaffinity(0, {core}))
  try:
    os.sched_setaffinity(0, {core})
    time.sleep(0.5)  # The busy loop has started.
    since = provenance.cpu_times()
    time.sleep(1.5)  # This process idles; the loop has the core.
    load = provenance.machine_load(since=since)
  finally:
    busy.kill()
    busy.wait()
    os.sched_setaffinity(0, mask)
  assert load['usable_cpus'] == 1
  assert load['others_share'] > 0.5
  assert provenance.shared_cores(load)
  assert 'of its 1 CPU' in provenance.describe(load)


def test_shared_cores_means_a_runnable_process_more_than_cpus():
  assert provenance.shared_cores({'load_1min': 4.1, 'cpus': 2})
  assert provenance.shared_cores({'load_1min': 2.5, 'cpus': 2})
  # Two jobs pinned to two cores (load about 2) do not share them.
  assert not provenance.shared_cores({'load_1min': 2.3, 'cpus': 2})
  assert not provenance.shared_cores({'load_1min': 30.0, 'cpus': 64})
  # Runs that recorded no load (older results files) are not flagged.
  for missing in (None, {}, {'load_1min': None, 'cpus': 2},
                  {'load_1min': 5.0, 'cpus': None}):
    assert not provenance.shared_cores(missing)


def test_shared_cores_also_means_others_used_this_jobs_cpus():
  # A pinned job sharing its core while the other core idles: load 2 on 2.
  assert provenance.shared_cores({'load_1min': 2.0, 'cpus': 2,
                                  'others_share': 0.48, 'usable_cpus': 1})
  assert not provenance.shared_cores({'load_1min': 2.0, 'cpus': 2,
                                      'others_share': 0.02,
                                      'usable_cpus': 1})
  # Jobs on the machine's other cores do not slow a job pinned to its own.
  assert not provenance.shared_cores({'load_1min': 4.0, 'cpus': 2,
                                      'others_share': 0.02,
                                      'usable_cpus': 1})
  # The load average still counts where the share could not be measured.
  assert provenance.shared_cores({'load_1min': 4.0, 'cpus': 2,
                                  'others_share': None, 'usable_cpus': 1})
