"""Sweeps: definition, local execution, and a real single-node SLURM cluster."""

import json
import os
import pathlib
import shutil
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
  assert f'--algorithm={jobs[0].flags["algorithm"]}' in cmd
  assert f'--config={ROOT / "experiments" / "configs" / config}' in cmd


def test_the_cpu_table_sweep_keeps_its_order_and_overrides():
  jobs = sweep_lib.load_sweep(ROOT / 'launch/sweeps/dear_cpu.py')
  # Seed by seed, then algorithm by algorithm, then model by model.
  assert [j.name for j in jobs[:4]] == [
      'bfs-dear-s0', 'bfs-nar-s0', 'bfs-nar_lt-s0', 'bellman_ford-dear-s0']
  assert [j.flags['seed'] for j in jobs] == [0] * 30 + [1] * 30 + [2] * 30
  assert all(j.flags['config.tensorboard'] is False for j in jobs)
  for job in jobs:
    overridden = 'config.test_every' in job.flags
    assert overridden == (job.flags['model'] == 'nar_lt'), job
  cmd = next(j for j in jobs if j.flags['model'] == 'nar_lt').command('/r')
  # The overrides come after the config file they override.
  config = next(i for i, a in enumerate(cmd) if a.startswith('--config='))
  assert cmd.index('--config.test_every=0') > config
  assert cmd.index('--config.tensorboard=False') > config


def test_the_ablation_sweep_changes_one_thing_of_the_table_run(monkeypatch):
  monkeypatch.setenv('TABLE_RUNS', '/table')
  jobs = sweep_lib.load_sweep(ROOT / 'launch/sweeps/dear_ablation.py')
  table = {j.name: j for j in
           sweep_lib.load_sweep(ROOT / 'launch/sweeps/dear_cpu.py')}
  assert len({j.name for j in jobs}) == len(jobs) == 10 * 7 * 3
  assert {j.flags['seed'] for j in jobs} == {0, 1, 2}
  for job in jobs:
    tag, seed = job.flags['config.tag'], job.flags['seed']
    # The table run of the same algorithm and seed is the one it varies.
    base = table[f'{job.flags["algorithm"]}-dear-s{seed}'].flags
    changed = {k: v for k, v in job.flags.items() if base.get(k) != v}
    assert job.name == f'{job.flags["algorithm"]}-dear-{tag}-s{seed}'
    assert 'config.tag' in changed and len(changed) >= 2, changed
    assert 'seed' not in changed, changed
    if tag == 'tol0.01_cap80':
      assert changed['config.deq.rel_tol'] == 0.01
      assert changed['config.deq.max_iter'] == 80
    if tag == 'align':
      assert changed['config.align.teacher'] == (
          f'/table/{job.flags["algorithm"]}-nar-s{seed}')


def test_the_longer_sweep_is_the_table_run_at_15000_steps_where_dear_trails():
  jobs = sweep_lib.load_sweep(ROOT / 'launch/sweeps/dear_longer.py')
  table = {j.name: j for j in
           sweep_lib.load_sweep(ROOT / 'launch/sweeps/dear_cpu.py')}
  assert len({j.name for j in jobs}) == len(jobs)
  for job in jobs:
    base = table[f'{job.flags["algorithm"]}-dear-s{job.flags["seed"]}'].flags
    changed = {k: v for k, v in job.flags.items() if base.get(k) != v}
    assert changed == {'config.tag': 'steps15k',
                       'config.train_steps': 15000}, changed
  # Its algorithms follow the rule its docstring states, recomputed from the
  # table's stored runs: DEAR's mean at 64 nodes trails NAR's by more than
  # the larger seed std (population std, as in gaps.md), and at least two
  # DEAR seeds picked a checkpoint at step 4,750 or later.
  runs = {}
  for path in (ROOT / 'results/dear_cpu/runs').glob('*.results.json'):
    run = json.loads(path.read_text())
    if not run['config'].get('tag'):
      runs.setdefault((run['algorithm'], run['model']), []).append(run)

  def scores(algorithm, model):
    return [r['test_scores']['64']['score'] for r in runs[algorithm, model]]

  chosen = set()
  for algorithm in {a for a, _ in runs}:
    dear, nar = scores(algorithm, 'dear'), scores(algorithm, 'nar')
    gap = sum(nar) / len(nar) - sum(dear) / len(dear)
    late = sum(r['best_step'] >= 4750 for r in runs[algorithm, 'dear'])
    if gap > max(_pstd(dear), _pstd(nar)) and late >= 2:
      chosen.add(algorithm)
  assert {j.flags['algorithm'] for j in jobs} == chosen
  assert {j.flags['seed'] for j in jobs} == {0, 1, 2}


def _pstd(values):
  mean = sum(values) / len(values)
  return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def test_select_and_with_flags():
  jobs = [sweep_lib.Job(f'j{i}', dict(seed=i % 2, model=m))
          for i, m in enumerate(['dear', 'nar', 'dear', 'nar_lt'])]
  assert [j.name for j in sweep_lib.select(jobs, {'seed': ['0']})] == [
      'j0', 'j2']
  assert [j.name for j in sweep_lib.select(
      jobs, {'seed': [1], 'model': ['nar', 'nar_lt']})] == ['j1', 'j3']
  # A typo selected nothing without a word: a name no job has, or a value
  # none has, is refused with what the jobs have.
  with pytest.raises(ValueError, match='no job of the sweep has the flag '
                     'tag; its flags are: model, seed'):
    sweep_lib.select(jobs, {'tag': ['x']})
  with pytest.raises(ValueError, match='no job of the sweep has seed=2,x; '
                     'its values: 0, 1'):
    sweep_lib.select(jobs, {'seed': ['0', '2', 'x']})
  # Jobs without a flag others have are dropped by a selection on it.
  tagged = [*jobs, sweep_lib.Job('t', dict(seed=0, model='dear', tag='x'))]
  assert [j.name for j in sweep_lib.select(tagged, {'tag': ['x']})] == ['t']
  extended = sweep_lib.with_flags(jobs, {'data_dir': '/d', 'seed': 5})
  assert [j.name for j in extended] == [j.name for j in jobs]
  assert extended[1].flags == dict(seed=5, model='nar', data_dir='/d')
  assert jobs[1].flags == dict(seed=1, model='nar')


# A stand-in for experiments.train: records that it ran, where and how,
# then finishes the run (or fails, for a job named *fail*).
_FAKE_TRAIN = """
import json, os, pathlib, sys
workdir, name, record = sys.argv[1:]
with open(record, 'a') as f:
  f.write(json.dumps(dict(name=name, cpus=sorted(os.sched_getaffinity(0)),
                          omp=os.environ.get('OMP_NUM_THREADS'),
                          malloc=os.environ.get('GLIBC_TUNABLES'))) + '\\n')
if 'fail' in name:
  sys.exit(3)
if 'oom' in name:  # What the kernel's out-of-memory killer does.
  os.kill(os.getpid(), 9)
pathlib.Path(workdir, 'results.json').write_text('{}')
"""


def _fake_command(record):
  def command(job, root):
    return [sys.executable, '-c', _FAKE_TRAIN, str(job.workdir(root)),
            job.name, str(record)]
  return command


def test_a_worker_runs_in_order_skips_finished_and_held_runs(tmp_path,
                                                            monkeypatch):
  import fcntl
  monkeypatch.delenv('GLIBC_TUNABLES', raising=False)  # The jobs' default.
  root, record = tmp_path / 'sweep', tmp_path / 'record.jsonl'
  names = ['a-dear-s0', 'a-nar-s0', 'b-fail-s0', 'b-dear-s0', 'b-nar-s0']
  jobs = [sweep_lib.Job(n, dict(algorithm=n.split('-')[0])) for n in names]
  (root / 'a-nar-s0').mkdir(parents=True)
  (root / 'a-nar-s0' / 'results.json').write_text('{}')
  (root / 'b-dear-s0').mkdir()
  lines = []
  with open(root / 'b-dear-s0' / '.lock', 'a') as held:
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another worker's
    report = sweep_lib.run_worker(jobs, root, cpu=0,
                                  command=_fake_command(record),
                                  log=lines.append)
  assert report == sweep_lib.WorkerReport(
      finished=['a-nar-s0'], held=['b-dear-s0'],
      ran=['a-dear-s0', 'b-nar-s0'], failed=['b-fail-s0'])
  runs = [json.loads(line) for line in record.read_text().splitlines()]
  assert [r['name'] for r in runs] == ['a-dear-s0', 'b-fail-s0', 'b-nar-s0']
  assert all(r['cpus'] == [0] and r['omp'] == '1' for r in runs)
  assert all(r['malloc'] == 'glibc.malloc.hugetlb=1' for r in runs)
  assert any('not finished' in line and 'b-fail-s0' in line
             for line in lines)
  assert (root / 'b-fail-s0' / 'job.log').exists()
  # Run again once the other worker let go: only what is left runs.
  record.unlink()
  report = sweep_lib.run_worker(jobs, root, command=_fake_command(record),
                                log=lines.append)
  assert report.ran == ['b-dear-s0'] and report.failed == ['b-fail-s0']
  assert report.finished == ['a-dear-s0', 'a-nar-s0', 'b-nar-s0']


def test_a_job_killed_by_a_signal_says_so_in_its_log_and_the_worker_log(
    tmp_path):
  root, record = tmp_path / 'sweep', tmp_path / 'record.jsonl'
  lines = []
  report = sweep_lib.run_worker([sweep_lib.Job('a-oom-s0', {})], root, cpu=0,
                                command=_fake_command(record),
                                log=lines.append)
  assert report.failed == ['a-oom-s0']
  [line] = [line for line in lines if 'not finished' in line]
  assert 'killed by SIGKILL' in line and 'out of memory' in line
  job_log = (root / 'a-oom-s0' / 'job.log').read_text().splitlines()
  assert job_log[-1].startswith('job stopped: killed by SIGKILL')
  assert sweep_lib.exit_reason(3) == 'exit code 3'
  assert sweep_lib.exit_reason(-15) == 'killed by SIGTERM'


def test_a_job_keeps_the_allocator_setting_it_was_given(tmp_path,
                                                        monkeypatch):
  record = tmp_path / 'record.jsonl'
  job = sweep_lib.Job('a-dear-s0', {})
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.hugetlb=0')
  assert sweep_lib.run_job(_fake_command(record)(job, tmp_path),
                           job.workdir(tmp_path)) == 0
  assert json.loads(record.read_text())['malloc'] == 'glibc.malloc.hugetlb=0'
  monkeypatch.delenv('GLIBC_TUNABLES')
  assert sweep_lib.run_job(_fake_command(record)(job, tmp_path),
                           job.workdir(tmp_path)) == 0
  last = json.loads(record.read_text().splitlines()[-1])
  assert last['malloc'] == sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES']


# Trains DEAR and NAR cells a few steps on a batch whose buffers are large
# enough for glibc to map them (over 128 KiB); prints a digest of the losses
# and parameters.
_DIGEST = """
import hashlib, clrs, jax, numpy as np, deq_clrs
from deq_clrs.measure import baseline
sampler, spec = clrs.build_sampler('bfs', num_samples=-1, length=16, seed=0)
full = sampler.next(8)
digest = hashlib.sha256()
for name, batch in (('deq_mpnn', deq_clrs.one_shot_feedback(full)),
                    ('mpnn', full)):
  model = clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=batch, hidden_dim=32,
      processor_factory=deq_clrs.get_processor_factory(name),
      encode_hints=False, decode_hints=False)
  baseline.init_model(model, batch.features, 0)
  for step in range(3):
    loss = model.feedback(jax.random.PRNGKey(step), batch)
    digest.update(np.float32(loss).tobytes())
  for leaf in jax.tree_util.tree_leaves(model.params):
    digest.update(np.asarray(leaf).tobytes())
print(digest.hexdigest())
"""


@pytest.mark.slow
def test_the_allocator_setting_changes_no_number():
  digests = set()
  for setting in ('', sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES']):
    out = subprocess.run(
        [sys.executable, '-c', _DIGEST], cwd=ROOT, capture_output=True,
        text=True, check=False, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT), GLIBC_TUNABLES=setting))
    assert out.returncode == 0, out.stderr[-3000:]
    digests.add(out.stdout.split()[-1])
  assert len(digests) == 1


def _dry_run(*args, env=None):
  return subprocess.run(
      [sys.executable, '-m', 'launch.submit', '--executor=worker',
       '--dry_run', *args], cwd=ROOT, capture_output=True, text=True,
      check=False, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


def _listed(stdout):
  return [line.split() for line in stdout.splitlines() if line.strip()]


def test_the_worker_dry_run_lists_what_is_left_in_order(tmp_path):
  root = tmp_path / 'runs'
  (root / 'bfs-dear-s0').mkdir(parents=True)
  (root / 'bfs-dear-s0' / 'results.json').write_text('{}')
  out = _dry_run(f'--sweep={ROOT / "launch/sweeps/dear_cpu.py"}',
                 f'--root={root}', '--only=seed=0',
                 '--only=algorithm=bfs,dfs', '--set=data_dir=/data')
  assert out.returncode == 0, out.stderr[-3000:]
  commands = _listed(out.stdout)
  workdirs = [c[-1] for c in commands]
  assert workdirs == [f'--workdir={root}/{n}' for n in (
      'bfs-nar-s0', 'bfs-nar_lt-s0', 'dfs-dear-s0', 'dfs-nar-s0',
      'dfs-nar_lt-s0')]
  assert all('--data_dir=/data' in c for c in commands)
  assert ['--config.test_every=0' in c for c in commands] == [
      False, True, False, False, True]
  bad = _dry_run(f'--sweep={ROOT / "launch/sweeps/dear_cpu.py"}',
                 f'--root={root}', '--only=seed')
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1] == (
      "error: --only takes NAME=VALUE, got 'seed'")
  assert '--executor:' not in bad.stderr  # one line, not absl's flag help
  # A typo in --only selected no run and the worker reported 0 to run; a
  # core the machine lacks failed in taskset once per job.
  for args, message in [
      (['--only=sed=0'], 'error: --only=sed=...: no job of the sweep has the '
       'flag sed; its flags are: algorithm, '),
      (['--only=seed=0,7'], 'error: --only=seed=0,7: no job of the sweep has '
       'seed=7; its values: 0, 1, 2'),
      ([f'--cpu={os.cpu_count()}'],
       f'error: --cpu={os.cpu_count()} is not a CPU of this machine (it has '
       f'CPUs 0-{os.cpu_count() - 1})')]:
    bad = _dry_run(f'--sweep={ROOT / "launch/sweeps/dear_cpu.py"}',
                   f'--root={root}', *args)
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert 'Traceback' not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith(message), (
        bad.stderr[-2000:])


def test_run_table_sh_is_the_worker_of_the_cpu_sweep(tmp_path):
  root = tmp_path / 'runs'
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / 'run_table.sh')], cwd=tmp_path,
      capture_output=True, text=True, check=False,
      env=dict(os.environ, RUNS=str(root), DRY_RUN='1', SEEDS='1',
               MODELS='nar_lt', ALGS='dfs minimum', DATA='/data', DONE=''))
  assert proc.returncode == 0, proc.stderr[-3000:]
  commands = _listed(proc.stdout)
  assert [c[-1] for c in commands] == [
      f'--workdir={root}/dfs-nar_lt-s1', f'--workdir={root}/minimum-nar_lt-s1']
  assert all('--config.test_every=0' in c and '--data_dir=/data' in c
             for c in commands)


def _table_copy(name_glob):
  """The one committed report copy of a table run matching ``name_glob``."""
  (path,) = (ROOT / 'results' / 'dear_cpu' / 'runs').glob(name_glob)
  return path


def test_runs_whose_results_are_kept_elsewhere_count_as_finished(tmp_path):
  # On a new machine the run folders are gone but the report's copies of
  # the finished runs are in the repository: the worker used to train
  # those runs again (hours each), and DRY_RUN listed them as left.
  done = tmp_path / 'done'
  done.mkdir()
  copy = _table_copy('bfs.dear.seed0.*.results.json')
  shutil.copy(copy, done / copy.name)
  jobs = sweep_lib.select(
      sweep_lib.load_sweep(ROOT / 'launch' / 'sweeps' / 'dear_cpu.py'),
      {'algorithm': ['bfs'], 'seed': ['0', '1']})
  jobs = sweep_lib.with_flags(jobs, {'data_dir': '/elsewhere'})
  other = sweep_lib.Job('bfs-dear-tol-s0', {**jobs[0].flags,
                                            'config.deq.rel_tol': 0.01})
  typo = sweep_lib.Job('bfs-dear-typo-s0', {**jobs[0].flags,
                                            'config.no_such_field': 1})
  # Values given as text (--set=seed=0) are read as the run reads them.
  text = sweep_lib.Job('bfs-dear-text-s0', {
      k: v if isinstance(v, (list, tuple)) else str(v)
      for k, v in jobs[0].flags.items()})
  wrong_type = sweep_lib.Job('bfs-dear-type-s0', {
      **jobs[0].flags, 'config.train_steps': 'many'})
  found = sweep_lib.finished_in([*jobs, other, typo, text, wrong_type], done)
  # Only the run with that algorithm, model, seed and config (data_dir is
  # bookkeeping); a changed setting or seed, or another model, is not it.
  assert found == {'bfs-dear-s0': str(done / copy.name),
                   'bfs-dear-text-s0': str(done / copy.name)}
  assert sweep_lib.job_config(wrong_type) is None
  assert sweep_lib.job_config(text)['seed'] == 0
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / 'run_table.sh')], cwd=tmp_path,
      capture_output=True, text=True, check=False,
      env=dict(os.environ, RUNS=str(tmp_path / 'runs'), DRY_RUN='1',
               SEEDS='0', ALGS='bfs', DONE=str(done)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert [c[-1].rsplit('/', 1)[-1] for c in _listed(proc.stdout)] == [
      'bfs-nar-s0', 'bfs-nar_lt-s0']
  assert f'1 runs of the sweep finished already in {done}' in proc.stderr
  bad = _dry_run(f'--sweep={ROOT / "launch/sweeps/dear_cpu.py"}',
                 f'--root={tmp_path}', f'--done={tmp_path / "nowhere"}')
  assert bad.returncode != 0 and 'is not a directory' in bad.stderr


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


def _wait_for(predicate, timeout_s, what, cluster=None, logs=None):
  """Polls ``predicate``; on timeout fails with the SLURM daemons' logs and
  the jobs' submitit stderr files under ``logs``."""
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(2.0)
  extra = cluster.log_tail() if cluster else ''
  for err in sorted(pathlib.Path(logs).rglob('*_log.err')) if logs else ():
    extra += f'\n== {err.name}\n{err.read_text()[-2000:]}'
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

  _wait_for(has_checkpoint, 900, 'a checkpoint of the long job', slurm,
            root / 'submitit')
  assert not (long_job.workdir(root) / 'results.json').exists()
  print('requeueing', long_handle.job_id, sorted(p.name for p in
                                                 ckpts.iterdir()), flush=True)
  slurm.run('scontrol', 'requeue', str(long_handle.job_id))
  for job in jobs:
    _wait_for(lambda job=job: (job.workdir(root) / 'results.json').exists(),
              1500, f'results of {job.name}', slurm, root / 'submitit')
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
