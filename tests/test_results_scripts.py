"""The scripts under results/ are thin wrappers of launch.table_jobs.

Each is one ``cd`` and one ``python -m launch.table_jobs <its name>
--from_env "$@"``; what they do is tested beside the modules
(``launch/table_jobs_test.py``, ``launch/table_scoring_test.py``,
``launch/carry_runs_test.py``; ``run_table.sh`` in
``launch/sweep_test.py``). Here: that each script hands its environment
variables and arguments to the entry point, without training or scoring
anything.
"""

import fcntl
import os
import pathlib
import re
import subprocess
import sys

import pytest

from launch import table_jobs

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / 'results').glob('*.sh'))


def _script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
  path = f'{pathlib.Path(sys.executable).parent}:{os.environ["PATH"]}'
  return subprocess.run(
      ['bash', str(ROOT / 'results' / f'{name}.sh'), *args],
      capture_output=True, text=True, check=False, timeout=120,
      env=dict(os.environ, PATH=path, **env))


def test_every_command_has_its_script():
  assert [p.stem for p in SCRIPTS] == sorted(table_jobs.COMMANDS)


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_a_script_only_calls_the_entry_point(script):
  code = [line for line in script.read_text().splitlines()
          if line.strip() and not line.lstrip().startswith('#')]
  assert code == [
      'cd "$(dirname "$0")/.." || exit',
      f'PYTHONPATH=. exec python -m launch.table_jobs {script.stem} '
      '--from_env "$@"']
  # The variables its comment names are the ones the command reads.
  named = re.search(r'Environment: ([A-Z_ ]+)', ' '.join(
      line.lstrip('# ') for line in script.read_text().splitlines()))
  assert named, f'{script.name} names no environment variables'
  assert named.group(1).split() == list(
      table_jobs.COMMANDS[script.stem].env)


def test_eval_table_sh_takes_the_runs_folder_from_the_environment(tmp_path):
  proc = _script('eval_table', RUNS=str(tmp_path / 'nowhere'))
  assert proc.returncode == 1
  assert proc.stderr.strip() == f'error: no runs folder at {tmp_path}/nowhere'
  # A finished run another process holds is named, and nothing runs.
  (tmp_path / 'bfs-dear-s0').mkdir()
  (tmp_path / 'bfs-dear-s0' / 'results.json').write_text('{}')
  (tmp_path / 'dfs-dear-s0').mkdir()  # unfinished
  with open(tmp_path / 'bfs-dear-s0' / '.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    proc = _script('eval_table', RUNS=str(tmp_path), CORE='0',
                   ALGS='bfs dfs')
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.splitlines() == [
      f'scoring {tmp_path}/bfs-dear-s0',
      f'not scored: {tmp_path}/bfs-dear-s0 (another process holds it)']


def test_ablate_eval_sh_refuses_an_unknown_setting_in_one_line(tmp_path):
  (tmp_path / 'runs' / 'bfs-dear-s0').mkdir(parents=True)
  (tmp_path / 'runs' / 'bfs-dear-s0' / 'results.json').write_text('{}')
  proc = _script('ablate_eval', RUNS=str(tmp_path / 'runs'),
                 OUT=str(tmp_path / 'out'), SETTINGS='default rel_tol0.5')
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith('error: unknown setting: rel_tol0.5')
  assert len(proc.stderr.strip().splitlines()) == 1
  assert not (tmp_path / 'out').exists()


def test_carry_runs_sh_packs_and_unpacks_through_its_folders(tmp_path):
  run = tmp_path / 'runs' / 'dfs-nar-s0'
  (run / 'checkpoints' / '500').mkdir(parents=True)
  (run / 'checkpoints' / '500' / 'commit_success.txt').write_text('')
  (run / 'config.json').write_text('{}')
  carry = str(tmp_path / 'carry')
  proc = _script('carry_runs', 'pack', RUNS=str(tmp_path / 'runs'),
                 CARRY=carry)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith('packed dfs-nar-s0 at step 500')
  proc = _script('carry_runs', 'unpack', RUNS=str(tmp_path / 'fresh'),
                 CARRY=carry)
  assert proc.returncode == 0, proc.stderr
  assert os.listdir(tmp_path / 'fresh') == ['dfs-nar-s0']
  proc = _script('carry_runs', 'push')
  assert proc.returncode == 1
  assert proc.stderr.strip() == (
      'error: carry_runs takes one of pack|unpack, got push')


def test_run_longer_sh_takes_its_sweep_and_algorithms(tmp_path):
  sweep = tmp_path / 'longer.py'
  sweep.write_text('def get_sweep():\n  return [dict(algorithm="bfs", '
                   'seed=0, model="dear")]\n')
  proc = _script('run_longer', SWEEP=str(sweep), ALGS='dfs',
                 RUNS=str(tmp_path / 'runs'), SHORT='2')
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith(
      'error: --only=algorithm=dfs: no job of the sweep has algorithm=dfs')


def test_allocator_benchmark_sh_takes_its_settings(tmp_path):
  proc = _script('allocator_benchmark', REPEATS='many',
                 OUT=str(tmp_path / 'a'))
  assert proc.returncode == 1
  assert "flag --repeats=many" in proc.stderr
  assert not list(tmp_path.iterdir())
