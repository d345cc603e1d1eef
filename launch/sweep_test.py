"""Sweeps: definition, local execution, and a real single-node SLURM cluster."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from launch import sweep as sweep_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'helpers'))

import slurm_cluster  # noqa: E402


@pytest.mark.parametrize('name, config', [('dear_paper', 'dear_paper.py'),
                                          ('dear_cpu', 'dear_cpu.py')])
def test_sweep_files_define_unique_jobs(name, config):
  jobs = sweep_lib.load_sweep(ROOT / f'launch/sweeps/{name}.py')
  assert len(jobs) == 10 * 3 * 3  # algorithms x (dear, nar, nar_lt) x seeds
  assert len({j.name for j in jobs}) == len(jobs)
  assert {j.flags['model'] for j in jobs} == {'dear', 'nar', 'nar_lt'}
  cmd = jobs[0].command('/sweep')
  assert cmd[1:3] == ['-m', 'experiments.train']
  assert f'--workdir=/sweep/{jobs[0].name}' in cmd
  assert '--algorithm=bellman_ford' in cmd
  assert f'--config={ROOT / "experiments" / "configs" / config}' in cmd


def test_bad_sweeps_are_refused(tmp_path):
  dup = tmp_path / 'dup.py'
  dup.write_text('def get_sweep():\n  return [dict(algorithm="bfs"), '
                 'dict(algorithm="bfs")]\n')
  with pytest.raises(ValueError, match='duplicate job names'):
    sweep_lib.load_sweep(dup)
  wd = tmp_path / 'wd.py'
  wd.write_text('def get_sweep():\n  return [dict(workdir="/x")]\n')
  with pytest.raises(ValueError, match='assigns workdirs itself'):
    sweep_lib.load_sweep(wd)
  with pytest.raises(FileNotFoundError):
    sweep_lib.load_sweep(tmp_path / 'nope.py')
  with pytest.raises(ValueError, match='unknown executor'):
    sweep_lib.make_executor('kubernetes', tmp_path)


def _wait_for(predicate, timeout_s, what, cluster=None):
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(2.0)
  extra = cluster.log_tail() if cluster else ''
  raise AssertionError(f'timed out waiting for {what}\n{extra}')


@pytest.fixture
def slurm(tmp_path):
  missing = slurm_cluster.missing_tools()
  if missing:
    pytest.skip(f'SLURM tools {missing} are not installed (apt-get install '
                '-y slurm-wlm munge; .ci/run installs them)')
  if os.geteuid() != 0:
    pytest.skip('a throwaway SLURM cluster needs root')
  cluster = slurm_cluster.SlurmCluster(tmp_path / 'slurm')
  cluster.start()
  old = os.environ.get('SLURM_CONF')
  os.environ['SLURM_CONF'] = str(cluster.conf)
  try:
    yield cluster
  finally:
    cluster.stop()
    if old is None:
      os.environ.pop('SLURM_CONF', None)
    else:
      os.environ['SLURM_CONF'] = old


@pytest.mark.slow
def test_sweep_runs_on_slurm_and_a_requeued_job_resumes(slurm, tmp_path):
  root = tmp_path / 'sweep'
  jobs = sweep_lib.load_sweep(ROOT / 'launch/sweeps/smoke.py')
  # The second job trains longer so that it can be requeued mid-run.
  steps = 2000
  jobs[1] = sweep_lib.Job(jobs[1].name, dict(
      jobs[1].flags, train_steps=steps, **{'config.checkpoint_every': 25}))
  executor = sweep_lib.make_executor('slurm', root / 'submitit',
                                     timeout_min=30, cpus_per_task=1)
  handles = sweep_lib.submit(jobs, root, executor)
  manifest = json.loads((root / 'jobs.json').read_text())
  assert [m['name'] for m in manifest] == [j.name for j in jobs]
  assert all('_' in m['job_id'] for m in manifest)  # one job array

  long_job, long_handle = jobs[1], handles[1]
  ckpts = long_job.workdir(root) / 'checkpoints'

  def has_checkpoint():
    return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())

  _wait_for(has_checkpoint, 900, 'a checkpoint of the long job', slurm)
  assert not (long_job.workdir(root) / 'results.json').exists()
  print('requeueing', long_handle.job_id, sorted(p.name for p in
                                                 ckpts.iterdir()), flush=True)
  slurm.run('scontrol', 'requeue', str(long_handle.job_id))
  for job in jobs:
    _wait_for(lambda job=job: (job.workdir(root) / 'results.json').exists(),
              1500, f'results of {job.name}', slurm)
  for job in jobs:
    res = json.loads((job.workdir(root) / 'results.json').read_text())
    assert res['algorithm'] == 'bfs'
    assert res['model'] == job.flags['model']
  log = (long_job.workdir(root) / 'job.log').read_text()
  assert 'resumed from step' in log, log[-3000:]
  long_res = json.loads((long_job.workdir(root) / 'results.json').read_text())
  assert long_res['train_steps'] == steps
  gathered = sweep_lib.collect_results(root)
  assert {r['job'] for r in gathered} == {j.name for j in jobs}


@pytest.mark.slow
def test_local_executor_runs_the_same_sweep(tmp_path):
  root = tmp_path / 'sweep'
  out = subprocess.run(
      [sys.executable, '-m', 'launch.submit',
       f'--sweep={ROOT / "launch/sweeps/smoke.py"}', f'--root={root}',
       '--executor=local', '--array_parallelism=1'],
      cwd=ROOT, capture_output=True, text=True, check=False,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert out.returncode == 0, out.stderr[-3000:]
  results = sweep_lib.collect_results(root)
  assert sorted(r['model'] for r in results) == ['dear', 'nar']
