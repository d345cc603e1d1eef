"""eval_table and ablate_eval pick the right runs, flags and environment.

A fake runner records each command it is given (and writes the file the
real evaluation would), so the choices are checked without scoring
anything; the pinning and a real kill go through real processes.
"""

import fcntl
import os
import pathlib
import sys

import pytest

from launch import sweep as sweep_lib
from launch import table_scoring


def _runs(root: pathlib.Path, names: dict[str, bool]) -> None:
  for name, finished in names.items():
    (root / name).mkdir(parents=True)
    if finished:
      (root / name / 'results.json').write_text('{}')


def _flag(command, name):
  return next((a.split('=', 1)[1] for a in command
               if a.startswith(f'--{name}=')), None)


class _Runner:
  """Records each call; writes the output (or eval_results.json) and a log
  as the real evaluation would, or returns ``codes[run name]``."""

  def __init__(self, codes=None):
    self.calls, self.envs, self.codes = [], [], codes or {}

  def __call__(self, command, env, log_path):
    self.calls.append(list(command))
    self.envs.append(dict(env))
    log_path.write_text('the evaluation\'s log\n')
    workdir = pathlib.Path(_flag(command, 'workdir'))
    if workdir.name in self.codes:
      return self.codes[workdir.name]
    out = _flag(command, 'output') or workdir / 'eval_results.json'
    pathlib.Path(out).write_text('{}')
    return 0

  def workdirs(self):
    return sorted(_flag(c, 'workdir') for c in self.calls)


def test_run_names_are_parsed():
  parse = table_scoring.parse_run_name
  assert parse('mst_prim-dear-tol0.01_cap80-s0') == table_scoring.RunName(
      'mst_prim', 'dear', 'tol0.01_cap80', '0')
  assert parse('bfs-nar_lt-s12') == table_scoring.RunName(
      'bfs', 'nar_lt', None, '12')
  assert parse('bfs-dear-steps15k-s2').tag == 'steps15k'
  assert parse('bfs-dear') is None and parse('.unpack.x') is None


def test_eval_table_scores_finished_dear_and_nar_runs_once(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True, 'bfs-nar-s0': True,
               'bfs-nar_lt-s0': True, 'dfs-dear-s0': False,
               'mst_prim-nar-s1': True, 'held-dear-s0': True})
  (root / 'mst_prim-nar-s1' / 'eval_results.json').write_text('{}')
  runner = _Runner()
  with open(root / 'held-dear-s0' / '.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    report = table_scoring.eval_table(root, core=1, data_dir='/data',
                                      run=runner, log=lambda _: None)
  # Not nar_lt, not unfinished, not already scored, not held.
  assert runner.workdirs() == [str(root / 'bfs-dear-s0'),
                               str(root / 'bfs-nar-s0')]
  assert report.held == [str(root / 'held-dear-s0')]
  assert all(c[:4] == sweep_lib.pinned_command([], 1) for c in runner.calls)
  assert all(c[4:6] == [sys.executable, '-m'] and
             c[6] == 'experiments.evaluate' for c in runner.calls)
  assert all('--test_sizes=128' in c and '--data_dir=/data' in c
             for c in runner.calls)
  # A second pass scores the run that was held, and nothing else.
  runner = _Runner()
  table_scoring.eval_table(root, run=runner, log=lambda _: None)
  assert runner.workdirs() == [str(root / 'held-dear-s0')]
  runner = _Runner()
  table_scoring.eval_table(root, run=runner, log=lambda _: None)
  assert runner.calls == []


def test_eval_table_says_why_a_run_was_not_scored(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True, 'dfs-dear-s0': True,
               'held-dear-s0': True})
  # The evaluation of bfs is killed (as the kernel's OOM killer does; a
  # real process), that of dfs fails with exit 1.
  fake = _Runner({'dfs-dear-s0': 1})

  def run(command, env, log_path):
    if 'bfs-dear' in _flag(command, 'workdir'):
      return table_scoring.run_subprocess(
          [sys.executable, '-c', 'import os; os.kill(os.getpid(), 9)'], env,
          log_path)
    return fake(command, env, log_path)

  # The holder (an evaluation, say) is writing its own eval.log.
  (root / 'held-dear-s0' / 'eval.log').write_text('the holder\'s log\n')
  lines = []
  with open(root / 'held-dear-s0' / '.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    report = table_scoring.eval_table(root, run=run, log=lines.append)
  out = '\n'.join(lines)
  assert f'not scored: {root / "bfs-dear-s0"} (killed by SIGKILL' in out
  assert 'out of memory' in (root / 'bfs-dear-s0' / 'eval.log').read_text()
  assert f'not scored: {root / "dfs-dear-s0"} (exit code 1; see ' in out
  assert f'not scored: {root / "held-dear-s0"} (another process' in out
  assert (root / 'held-dear-s0' / 'eval.log').read_text() == (
      'the holder\'s log\n')
  assert report.failed == [str(root / 'bfs-dear-s0'),
                           str(root / 'dfs-dear-s0')]


def test_eval_table_scores_ablation_runs_by_their_algorithm(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'mst_prim-dear-tol0.01_cap80-s0': True,
               'mst_prim-dear-tol0.01-s2': True, 'bfs-dear-no_jac-s1': True,
               'bfs-nar_lt-x-s0': True, 'mst_prim-dear-cap80-s1': False})
  runner = _Runner()
  table_scoring.eval_table(root, algorithms=['mst_prim'], run=runner,
                           log=lambda _: None)
  assert runner.workdirs() == sorted(str(root / n) for n in (
      'mst_prim-dear-tol0.01_cap80-s0', 'mst_prim-dear-tol0.01-s2'))
  # Without algorithms, every finished dear run; never nar_lt.
  runner = _Runner()
  table_scoring.eval_table(root, run=runner, log=lambda _: None)
  assert runner.workdirs() == [str(root / 'bfs-dear-no_jac-s1')]


def test_eval_table_takes_algorithms_and_a_smaller_batch(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'floyd_warshall-dear-s0': True, 'floyd_warshall-nar-s1': True,
               'bfs-dear-s0': True, 'mst_prim-dear-s0': True})
  runner = _Runner()
  table_scoring.eval_table(root, eval_batch_size=5, sizes=[128, 256],
                           algorithms=['floyd_warshall', 'mst_prim'],
                           run=runner, log=lambda _: None)
  assert runner.workdirs() == sorted(str(root / n) for n in (
      'floyd_warshall-dear-s0', 'mst_prim-dear-s0', 'floyd_warshall-nar-s1'))
  assert all('--eval_batch_size=5' in c and '--test_sizes=128,256' in c
             for c in runner.calls)
  runner = _Runner()
  table_scoring.eval_table(root, run=runner, log=lambda _: None)
  (call,) = runner.calls
  assert not any(a.startswith('--eval_batch_size') for a in call)
  assert _flag(call, 'workdir') == str(root / 'bfs-dear-s0')


def test_scoring_refuses_a_missing_runs_folder(tmp_path):
  with pytest.raises(FileNotFoundError, match='no runs folder at'):
    table_scoring.eval_table(tmp_path / 'nowhere', run=_Runner())
  with pytest.raises(FileNotFoundError, match='no runs folder at'):
    table_scoring.ablate_eval(tmp_path / 'nowhere', tmp_path / 'out',
                              run=_Runner())


def test_ablate_eval_scores_each_setting_of_the_chosen_dear_runs(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True, 'bfs-dear-s1': True,
               'dfs-dear-s0': True, 'mst_prim-dear-s0': False,
               'bfs-nar-s0': True, 'bfs-dear-tol0.01-s0': True})
  out = tmp_path / 'ablations'
  runner = _Runner()
  table_scoring.ablate_eval(root, out, seeds=['0'],
                            algorithms=['bfs', 'mst_prim'], run=runner,
                            log=lambda _: None)
  assert set(os.listdir(out)) == {f'bfs-dear-s0.{s}.json' for s in (
      'default', 'rel_tol0.01', 'no_eval_noise', 'phantom_in_eval')}
  flags = {_flag(c, 'output').split('/')[-1]: c for c in runner.calls}
  assert not any('--rel_tol' in a for a in flags['bfs-dear-s0.default.json'])
  assert '--rel_tol=0.01' in flags['bfs-dear-s0.rel_tol0.01.json']
  assert '--nonoise_in_eval' in flags['bfs-dear-s0.no_eval_noise.json']
  assert '--phantom_in_eval' in flags['bfs-dear-s0.phantom_in_eval.json']
  assert all('--test_sizes=64' in c for c in runner.calls)
  # Files already there are kept.
  runner = _Runner()
  table_scoring.ablate_eval(root, out, seeds=['0'], algorithms=['bfs'],
                            run=runner, log=lambda _: None)
  assert runner.calls == []
  # Other settings, e.g. the tolerance of 0.001.
  runner = _Runner()
  table_scoring.ablate_eval(root, out, seeds=['0'], algorithms=['dfs'],
                            settings=['rel_tol0.001'], run=runner,
                            log=lambda _: None)
  (call,) = runner.calls
  assert '--rel_tol=0.001' in call
  assert _flag(call, 'output') == str(out / 'dfs-dear-s0.rel_tol0.001.json')


def test_ablate_eval_says_which_evaluation_failed(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True})
  lines = []
  written = table_scoring.ablate_eval(
      root, tmp_path / 'out', settings=['default'],
      run=_Runner({'bfs-dear-s0': 1}), log=lines.append)
  assert written == []
  assert lines[-1].startswith('failed: bfs-dear-s0 default (see ')
  assert lines[-1].endswith('ablate_eval.bfs-dear-s0.default.log)')


def test_scoring_uses_the_sweeps_allocator_setting(tmp_path, monkeypatch):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True})
  wanted = sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES']
  monkeypatch.setenv('GLIBC_TUNABLES', '')
  for score in (
      lambda run: table_scoring.eval_table(root, run=run, log=print),
      lambda run: table_scoring.ablate_eval(
          root, tmp_path / 'a', settings=['default'], run=run, log=print)):
    runner = _Runner()
    score(runner)
    (env,) = runner.envs
    assert env['GLIBC_TUNABLES'] == wanted
    assert env['OMP_NUM_THREADS'] == '1'
    assert env['XLA_FLAGS'] == '--xla_cpu_multi_thread_eigen=false'
    (root / 'bfs-dear-s0' / 'eval_results.json').unlink(missing_ok=True)
  # A value set by the caller is kept.
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.hugetlb=0')
  assert table_scoring.evaluation_env(0)['GLIBC_TUNABLES'] == (
      'glibc.malloc.hugetlb=0')


def test_an_evaluation_runs_pinned_to_its_core(tmp_path):
  log = tmp_path / 'log'
  log.write_text('stale')
  command = sweep_lib.pinned_command(
      [sys.executable, '-c',
       'import os; print(sorted(os.sched_getaffinity(0)), '
       'os.environ["OMP_NUM_THREADS"])'], 0)
  assert table_scoring.run_subprocess(command, table_scoring.evaluation_env(0),
                                      log) == 0
  assert log.read_text() == '[0] 1\n'


def test_ablate_eval_refuses_an_unknown_setting_before_scoring_anything(
    tmp_path):
  # An unknown setting after a known one used to be found only once the
  # known one had been scored (minutes per run), and never where no run had
  # finished yet.
  for finished in (True, False):
    root = tmp_path / f'runs{finished}'
    _runs(root, {'bfs-dear-s0': finished})
    runner = _Runner()
    with pytest.raises(ValueError, match=r'^unknown setting: rel_tol0\.5 '):
      table_scoring.ablate_eval(root, tmp_path / 'out',
                                settings=['default', 'rel_tol0.5'],
                                run=runner)
    assert runner.calls == []
    assert not (tmp_path / 'out').exists()
