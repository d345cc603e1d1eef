"""Tests of the code-version record of results files."""

import os
import subprocess

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
