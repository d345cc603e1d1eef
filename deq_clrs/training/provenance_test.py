"""Tests of the code-version record of results files."""

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
