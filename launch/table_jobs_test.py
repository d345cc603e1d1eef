"""The table's entry point: environment to flags, one-line errors, the
worker's flags, the two legs of run_longer and the allocator benchmark."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from absl import flags

from experiments import rebuild_results
from launch import sweep as sweep_lib
from launch import table_jobs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _main(*args, env=None):
  return subprocess.run(
      [sys.executable, '-m', 'launch.table_jobs', *args], cwd=ROOT,
      capture_output=True, text=True, check=False, timeout=120,
      env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


def test_environment_variables_become_the_commands_flags():
  env = dict(RUNS='/r', CORE='1', ALGS='bfs  dfs', SEEDS='0,1', DATA='',
             SETTINGS='default', DRY_RUN='0', DONE='')
  assert table_jobs.env_args('eval_table', env) == [
      '--runs=/r', '--core=1', '--algorithms=bfs,dfs']
  assert table_jobs.env_args('ablate_eval', env) == [
      '--runs=/r', '--core=1', '--seeds=0,1', '--algorithms=bfs,dfs',
      '--settings=default']
  # DONE= turns the finished-copies folder off; any DRY_RUN is a dry run.
  assert table_jobs.env_args('run_table', env)[-2:] == ['--done=',
                                                        '--dry_run']
  assert table_jobs.env_args('run_table', {}) == []
  assert table_jobs.env_args('carry_runs', dict(CARRY='/c', CORE='1')) == [
      '--carry=/c']
  # Every flag a command reads from the environment is a flag.
  defined = flags.FlagValues()
  table_jobs.define_flags(defined)
  for command in table_jobs.COMMANDS.values():
    for flag in command.env.values():
      assert flag in defined, flag


def test_run_table_gives_the_worker_the_table_sweep_and_filters():
  args = table_jobs.run_table_args('/r', core=1, seeds=['0'],
                                   models=['dear', 'nar'], data_dir='/d',
                                   dry_run=True)
  assert args == [f'--sweep={table_jobs.TABLE_SWEEP}', '--root=/r',
                  '--executor=worker', '--cpu=1', '--only=seed=0',
                  '--only=model=dear,nar', '--set=data_dir=/d',
                  f'--done={table_jobs.DEFAULT_DONE}', '--dry_run']
  assert not any(a.startswith('--done') for a in table_jobs.run_table_args(
      '/r', done=''))


def test_bad_input_is_refused_in_one_line(tmp_path):
  names = ', '.join(table_jobs.COMMANDS)
  for args, env, message in [
      ((), {}, f'error: no command; expected one of: {names}'),
      (('push',), {}, f"error: unknown command 'push'; expected one of: "
       f'{names}'),
      (('carry_runs', 'push'), {},
       'error: carry_runs takes one of pack|unpack, got push'),
      (('carry_runs',), {},
       'error: carry_runs takes one of pack|unpack, got nothing'),
      (('eval_table', 'now'), {}, "error: unexpected arguments: ['now']"),
      (('eval_table', '--settings=default'), {},
       'error: eval_table takes no --settings; its flags: --algorithms, '
       '--core, --data_dir, --eval_batch_size, --runs, --sizes'),
      (('eval_table', f'--runs={tmp_path / "no"}'), {},
       f'error: no runs folder at {tmp_path / "no"}'),
      # The environment reaches only the scripts (--from_env).
      (('eval_table', '--from_env'), dict(RUNS=str(tmp_path / 'no')),
       f'error: no runs folder at {tmp_path / "no"}'),
      (('eval_table', f'--runs={tmp_path}', f'--core={os.cpu_count()}'), {},
       f'error: --core={os.cpu_count()} is not a CPU of this machine'),
      (('eval_table', f'--runs={tmp_path}', '--sizes='), {},
       'error: --sizes is empty')]:
    proc = _main(*args, env=env)
    assert proc.returncode == 1, (args, proc.stderr)
    assert proc.stderr.strip().startswith(message), (args, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
  proc = _main('eval_table', '--bogus')
  assert proc.returncode == 1 and "Unknown command line flag 'bogus'" in (
      proc.stderr)
  # A flag on the command line wins over the environment.
  proc = _main('eval_table', '--from_env', f'--runs={tmp_path / "flag"}',
               env=dict(RUNS=str(tmp_path / 'env')))
  assert proc.stderr.strip() == f'error: no runs folder at {tmp_path / "flag"}'


class _Worker:
  """Stands in for sweep.run_worker: finishes each job at its
  train_steps (or leaves it, or fails it), recording what it ran."""

  def __init__(self, hold=(), fail=()):
    self.ran, self.hold, self.fail = [], hold, fail

  def __call__(self, jobs, root, cpu, log):
    (job,) = jobs
    steps = int(job.flags['config.train_steps'])
    self.ran.append((job.name, steps, cpu, job.flags.get('data_dir')))
    report = sweep_lib.WorkerReport()
    if (job.name, steps) in self.fail:
      report.failed.append(job.name)
    elif job.name not in self.hold and not job.finished(root):
      job.workdir(root).mkdir(parents=True, exist_ok=True)
      (job.workdir(root) / 'results.json').write_text(
          json.dumps({'train_steps': steps}))
    return report


def _sweep(tmp_path):
  sweep = tmp_path / 'longer.py'
  sweep.write_text(_LONGER_SWEEP.format(root=str(ROOT)))
  return sweep


def test_run_longer_runs_two_legs_and_keeps_the_first(tmp_path):
  runs, worker, lines = str(tmp_path / 'runs'), _Worker(), []
  table_jobs.run_longer(_sweep(tmp_path), runs, short_steps=2,
                        algorithms=['minimum'], data_dir='/d', core=1,
                        worker=worker, log=lines.append)
  assert worker.ran == [('minimum-dear-t-s0', 2, 1, '/d'),
                        ('minimum-dear-t-s0', 4, 1, '/d')]
  run_dir = pathlib.Path(runs) / 'minimum-dear-t-s0'
  assert json.loads((run_dir / 'results.2.json').read_text()) == {
      'train_steps': 2}
  # A rerun trains nothing new; a lost long leg resumes without a short one.
  worker = _Worker()
  (run_dir / 'results.json').unlink()
  table_jobs.run_longer(_sweep(tmp_path), runs, short_steps=2,
                        algorithms=['minimum'], worker=worker,
                        log=lines.append)
  assert worker.ran == [('minimum-dear-t-s0', 4, 0, None)]


def test_run_longer_leaves_a_held_run_and_stops_at_a_failed_leg(tmp_path):
  runs, lines = str(tmp_path / 'runs'), []
  worker = _Worker(hold=('minimum-dear-t-s0',))
  table_jobs.run_longer(_sweep(tmp_path), runs, short_steps=2,
                        worker=worker, log=lines.append)
  # The held run's long leg is not started; the next run goes on.
  assert [r[:2] for r in worker.ran] == [('minimum-dear-t-s0', 2),
                                         ('bfs-dear-t-s0', 2),
                                         ('bfs-dear-t-s0', 4)]
  assert lines == ['minimum-dear-t-s0: no 2-step results.json (held by '
                   'another worker?)']
  worker = _Worker(fail=(('minimum-dear-t-s0', 2),))
  with pytest.raises(table_jobs.JobFailed, match='not finished: '
                     'minimum-dear-t-s0'):
    table_jobs.run_longer(_sweep(tmp_path), runs, short_steps=2,
                          worker=worker, log=lines.append)
  assert len(worker.ran) == 1
  with pytest.raises(ValueError, match='no job of the sweep has '
                     'algorithm=dfs'):
    table_jobs.run_longer(_sweep(tmp_path), runs, algorithms=['dfs'],
                          worker=worker)


def test_the_allocator_benchmark_runs_both_settings_pinned(tmp_path):
  calls = []

  def run(command, env):
    calls.append((list(command), env['GLIBC_TUNABLES']))
    output = next(a.split('=', 1)[1] for a in command
                  if a.startswith('--output='))
    scale = 2.0 if env['GLIBC_TUNABLES'] == '' else 1.0
    pathlib.Path(output).write_text(json.dumps({'algorithms': {'bfs': {
        'models': {'nar': {'train_step': {'median_s': scale},
                           'inference': {'16': {'median_s': scale / 4}}}}}}}))
    return 0

  out = str(tmp_path / 'alloc')
  text = table_jobs.allocator_benchmark(out, algorithms=['bfs'],
                                        models=['nar'], core=1, run=run,
                                        log=lambda _: None)
  tuned = sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES']
  assert [setting for _, setting in calls] == ['', tuned]
  assert all(c[:4] == sweep_lib.pinned_command([], 1) for c, _ in calls)
  assert all('--algorithms=bfs' in c and '--models=nar' in c
             and '--repeats=5' in c for c, _ in calls)
  records = [json.loads(pathlib.Path(f'{out}.{v}.json').read_text())
             for v in ('default', 'tuned')]
  assert text == rebuild_results.allocator_markdown(*records, tuned)
  assert pathlib.Path(f'{out}.md').read_text() == text
  assert '| bfs | nar | train step | 2.000 | 1.000 | 2.00x |' in text
  with pytest.raises(table_jobs.JobFailed, match="GLIBC_TUNABLES='' failed"):
    table_jobs.allocator_benchmark(out, run=lambda c, e: 1,
                                   log=lambda _: None)


_LONGER_SWEEP = '''
import pathlib
CONFIG = pathlib.Path({root!r}) / 'experiments' / 'configs' / 'test.py'
TAG = 't'
SEEDS = (0,)
ALGORITHMS = ('minimum', 'bfs')


def get_sweep():
  return [dict(config=str(CONFIG), algorithm=a, model='dear', seed=s,
               name=f'{{a}}-dear-{{TAG}}-s{{s}}',
               **{{'config.tag': TAG, 'config.train_steps': 4,
                  'config.tensorboard': False}})
          for s in SEEDS for a in ALGORITHMS]
'''


@pytest.mark.slow
def test_run_longer_keeps_the_short_leg_and_resumes_to_the_long_one(
    tmp_path):
  """Two real (tiny) legs: the first leg's results survive as a snapshot,
  the second resumes from its checkpoint, and a rerun trains nothing."""
  runs = tmp_path / 'runs'

  def run():
    table_jobs.run_longer(_sweep(tmp_path), str(runs), short_steps=2,
                          algorithms=['minimum'],
                          data_dir=str(tmp_path / 'data'), core=0)

  run()
  assert [p.name for p in runs.iterdir()] == ['minimum-dear-t-s0']
  run_dir = runs / 'minimum-dear-t-s0'
  short = json.loads((run_dir / 'results.2.json').read_text())
  long = json.loads((run_dir / 'results.json').read_text())
  assert (short['train_steps'], long['train_steps']) == (2, 4)
  assert short['config']['train_steps'] == 2
  assert long['config']['train_steps'] == 4
  # One trajectory: the long leg's history starts with the short leg's.
  assert long['history'][:len(short['history'])] == short['history']
  assert [h['step'] for h in long['history']] == [0, 2, 4]
  assert 'resumed from step 2 of 4' in (run_dir / 'job.log').read_text()
  # A rerun finds both legs done.
  before = (run_dir / 'job.log').read_text()
  run()
  assert (run_dir / 'job.log').read_text() == before
  # A long leg killed after the rename resumes without a new short leg.
  (run_dir / 'results.json').unlink()
  run()
  assert json.loads((run_dir / 'results.2.json').read_text()) == short
  assert json.loads((run_dir / 'results.json').read_text())[
      'train_steps'] == 4
