"""results/eval_table.sh and results/ablate_eval.sh pick the right runs.

``taskset`` is replaced by a stub on PATH that records the command it was
given (and writes the output file the real evaluation would), so the
scripts' choices are checked without training or scoring anything;
results/run_longer.sh is checked on real tiny runs (slow).
"""

import fcntl
import json
import os
import pathlib
import subprocess
import sys

import pytest

from launch import sweep as sweep_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]

STUB = '''#!/usr/bin/env bash
# Records its arguments; writes what --output (or the workdir's
# eval_results.json) would hold.
echo "$*" >> "$CALLS"
out=""; workdir=""
for a in "$@"; do
  case "$a" in
    --output=*) out="${a#--output=}";;
    --workdir=*) workdir="${a#--workdir=}";;
  esac
done
[ -n "$out" ] || out="$workdir/eval_results.json"
echo '{}' > "$out"
'''


def _runs(root: pathlib.Path, names: dict[str, bool]) -> None:
  for name, finished in names.items():
    (root / name).mkdir(parents=True)
    if finished:
      (root / name / 'results.json').write_text('{}')


def _run(script: str, tmp_path: pathlib.Path, **env) -> list[str]:
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  (bin_dir / 'taskset').write_text(STUB)
  (bin_dir / 'taskset').chmod(0o755)
  calls = tmp_path / 'calls'
  calls.write_text('')
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / script)], capture_output=True,
      text=True, check=False, timeout=120,
      env=dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}',
               CALLS=str(calls), **env))
  assert proc.returncode == 0, proc.stderr
  return [line for line in calls.read_text().splitlines() if line]


def test_eval_table_scores_finished_dear_and_nar_runs_once(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True, 'bfs-nar-s0': True,
               'bfs-nar_lt-s0': True, 'dfs-dear-s0': False,
               'mst_prim-nar-s1': True, 'held-dear-s0': True})
  (root / 'mst_prim-nar-s1' / 'eval_results.json').write_text('{}')
  with open(root / 'held-dear-s0' / '.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    calls = _run('eval_table.sh', tmp_path, RUNS=str(root), CORE='1',
                 DATA='/data')
  scored = sorted(c.split('--workdir=')[1].split()[0] for c in calls)
  # Not nar_lt, not unfinished, not already scored, not held.
  assert scored == [str(root / 'bfs-dear-s0'), str(root / 'bfs-nar-s0')]
  assert all(c.startswith('-c 1 env ') for c in calls)
  assert all('--test_sizes=128' in c and '--data_dir=/data' in c
             for c in calls)
  # A second pass scores the run that was held, and nothing else.
  (call,) = _run('eval_table.sh', tmp_path, RUNS=str(root))
  assert f'--workdir={root / "held-dear-s0"} ' in call
  assert _run('eval_table.sh', tmp_path, RUNS=str(root)) == []


def test_eval_table_says_why_a_run_was_not_scored(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True, 'dfs-dear-s0': True,
                'held-dear-s0': True})
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  # The evaluation of bfs is killed (as the kernel's OOM killer does), that
  # of dfs fails with exit 1.
  (bin_dir / 'taskset').write_text(
      '#!/usr/bin/env bash\n'
      'case "$*" in *bfs-dear*) kill -9 $$;; *dfs-dear*) exit 1;; esac\n')
  (bin_dir / 'taskset').chmod(0o755)
  # The holder (an evaluation, say) is writing its own eval.log.
  (root / 'held-dear-s0' / 'eval.log').write_text('the holder\'s log\n')
  with open(root / 'held-dear-s0' / '.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    proc = subprocess.run(
        ['bash', str(ROOT / 'results' / 'eval_table.sh')],
        capture_output=True, text=True, check=False, timeout=120,
        env=dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}',
                 RUNS=str(root)))
  out = proc.stdout
  assert f'not scored: {root / "bfs-dear-s0"} (killed, exit 137' in out
  assert 'out of memory' in (root / 'bfs-dear-s0' / 'eval.log').read_text()
  assert f'not scored: {root / "dfs-dear-s0"} (exit 1;' in out
  assert f'not scored: {root / "held-dear-s0"} (another process' in out
  assert (root / 'held-dear-s0' / 'eval.log').read_text() == (
      'the holder\'s log\n')


def test_eval_table_scores_ablation_runs_by_their_algorithm(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'mst_prim-dear-tol0.01_cap80-s0': True,
               'mst_prim-dear-tol0.01-s2': True, 'bfs-dear-no_jac-s1': True,
               'bfs-nar_lt-x-s0': True, 'mst_prim-dear-cap80-s1': False})
  calls = _run('eval_table.sh', tmp_path, RUNS=str(root), ALGS='mst_prim')
  scored = sorted(c.split('--workdir=')[1].split()[0] for c in calls)
  assert scored == sorted(str(root / n) for n in (
      'mst_prim-dear-tol0.01_cap80-s0', 'mst_prim-dear-tol0.01-s2'))
  # Without ALGS, every finished dear run; never nar_lt.
  (call,) = _run('eval_table.sh', tmp_path, RUNS=str(root))
  assert f'--workdir={root / "bfs-dear-no_jac-s1"} ' in call


def test_eval_table_takes_algorithms_and_a_smaller_batch(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'floyd_warshall-dear-s0': True, 'floyd_warshall-nar-s1': True,
               'bfs-dear-s0': True, 'mst_prim-dear-s0': True})
  calls = _run('eval_table.sh', tmp_path, RUNS=str(root), EVAL_BATCH='5',
               ALGS='floyd_warshall mst_prim')
  scored = sorted(c.split('--workdir=')[1].split()[0] for c in calls)
  assert scored == sorted(str(root / n) for n in (
      'floyd_warshall-dear-s0', 'mst_prim-dear-s0', 'floyd_warshall-nar-s1'))
  assert all('--eval_batch_size=5' in c for c in calls)
  (call,) = _run('eval_table.sh', tmp_path, RUNS=str(root))
  assert '--eval_batch_size' not in call and 'bfs-dear-s0' in call


def test_ablate_eval_scores_each_setting_of_the_chosen_dear_runs(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True, 'bfs-dear-s1': True,
               'dfs-dear-s0': True, 'mst_prim-dear-s0': False,
               'bfs-nar-s0': True})
  out = tmp_path / 'ablations'
  calls = _run('ablate_eval.sh', tmp_path, RUNS=str(root), SEEDS='0',
               ALGS='bfs mst_prim', OUT=str(out))
  assert set(os.listdir(out)) == {f'bfs-dear-s0.{s}.json' for s in (
      'default', 'rel_tol0.01', 'no_eval_noise', 'phantom_in_eval')}
  flags = {c.split('--output=')[1].split('/')[-1]: c for c in calls}
  assert '--rel_tol' not in flags['bfs-dear-s0.default.json']
  assert '--rel_tol=0.01' in flags['bfs-dear-s0.rel_tol0.01.json']
  assert '--nonoise_in_eval' in flags['bfs-dear-s0.no_eval_noise.json']
  assert '--phantom_in_eval' in flags['bfs-dear-s0.phantom_in_eval.json']
  assert all('--test_sizes=64' in c for c in calls)
  # Files already there are kept.
  assert _run('ablate_eval.sh', tmp_path, RUNS=str(root), SEEDS='0',
              ALGS='bfs', OUT=str(out)) == []
  # SETTINGS picks others, e.g. the tolerance of 0.001.
  calls = _run('ablate_eval.sh', tmp_path, RUNS=str(root), SEEDS='0',
               ALGS='dfs', OUT=str(out), SETTINGS='rel_tol0.001')
  assert len(calls) == 1 and '--rel_tol=0.001' in calls[0]
  assert 'dfs-dear-s0.rel_tol0.001.json' in calls[0]


def test_scoring_scripts_use_the_sweeps_allocator_setting(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True})
  wanted = sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES']
  for script, env in (('eval_table.sh', {}),
                      ('ablate_eval.sh', dict(SETTINGS='default',
                                              OUT=str(tmp_path / 'a')))):
    (call,) = _run(script, tmp_path, RUNS=str(root), GLIBC_TUNABLES='',
                   **env)
    assert f' GLIBC_TUNABLES={wanted} ' in call, (script, call)
    (root / 'bfs-dear-s0' / 'eval_results.json').unlink(missing_ok=True)
  # A value set by the caller is kept.
  (call,) = _run('eval_table.sh', tmp_path, RUNS=str(root),
                 GLIBC_TUNABLES='glibc.malloc.hugetlb=0')
  assert ' GLIBC_TUNABLES=glibc.malloc.hugetlb=0 ' in call


def test_ablate_eval_refuses_an_unknown_setting_in_one_line(tmp_path):
  root = tmp_path / 'runs'
  _runs(root, {'bfs-dear-s0': True})
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / 'ablate_eval.sh')], capture_output=True,
      text=True, check=False, timeout=120,
      env=dict(os.environ, RUNS=str(root), OUT=str(tmp_path / 'out'),
               SETTINGS='rel_tol0.5'))
  assert proc.returncode == 2
  assert proc.stderr.strip() == 'unknown setting: rel_tol0.5'


def test_ablate_eval_refuses_an_unknown_setting_before_scoring_anything(
    tmp_path):
  # An unknown setting after a known one used to be found only once the
  # known one had been scored (minutes per run), and never where no run had
  # finished yet.
  for finished in (True, False):
    root = tmp_path / f'runs{finished}'
    _runs(root, {'bfs-dear-s0': finished})
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / 'taskset').write_text(STUB)
    (bin_dir / 'taskset').chmod(0o755)
    calls = tmp_path / f'calls{finished}'
    proc = subprocess.run(
        ['bash', str(ROOT / 'results' / 'ablate_eval.sh')],
        capture_output=True, text=True, check=False, timeout=120,
        env=dict(os.environ, RUNS=str(root), OUT=str(tmp_path / 'out'),
                 SETTINGS='default rel_tol0.5', CALLS=str(calls),
                 PATH=f'{bin_dir}:{os.environ["PATH"]}'))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == 'unknown setting: rel_tol0.5'
    assert not calls.exists()


def _carry(tmp_path: pathlib.Path, *args: str, **env) -> str:
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / 'carry_runs.sh'), *args],
      capture_output=True, text=True, check=False, timeout=120,
      env=dict(os.environ, CARRY=str(tmp_path / 'carry'), **env))
  assert proc.returncode == 0, proc.stderr
  return proc.stdout


def _checkpoint(workdir: pathlib.Path, step: int, committed=True) -> None:
  step_dir = workdir / 'checkpoints' / str(step) / 'default'
  step_dir.mkdir(parents=True)
  (step_dir / 'blob').write_text(f'state at {step}')
  if committed:
    (step_dir.parent / 'commit_success.txt').write_text('')


def test_carry_runs_packs_the_newest_checkpoint_of_unfinished_runs(tmp_path):
  runs = tmp_path / 'runs'
  _runs(runs, {'dfs-nar-s0': False, 'bfs-dear-s1': True, 'empty-nar-s0': False})
  dfs = runs / 'dfs-nar-s0'
  (dfs / 'config.json').write_text('{"seed": 0}')
  (dfs / 'history.jsonl').write_text('{"step": 250}\n')
  (dfs / 'segments.jsonl').write_text('{"from_step": 0}\n')
  (dfs / 'job.log').write_text('not carried')
  _checkpoint(dfs, 250)
  _checkpoint(dfs, 2750)
  _checkpoint(dfs, 3000, committed=False)  # Cut short by a kill.
  (dfs / 'checkpoints' / '2750.orbax-checkpoint-tmp-1').mkdir()
  (runs / 'bfs-dear-s1' / 'config.json').write_text('{}')
  _checkpoint(runs / 'bfs-dear-s1', 5000)
  carry = tmp_path / 'carry'
  carry.mkdir()
  (carry / 'bfs-dear-s1.tar.gz').write_text('stale: the run has finished')
  out = _carry(tmp_path, 'pack', RUNS=str(runs))
  assert 'packed dfs-nar-s0 at step 2750' in out
  assert sorted(os.listdir(carry)) == ['dfs-nar-s0.tar.gz']

  fresh = tmp_path / 'fresh'
  out = _carry(tmp_path, 'unpack', RUNS=str(fresh))
  assert sorted(os.listdir(fresh)) == ['dfs-nar-s0']
  restored = fresh / 'dfs-nar-s0'
  assert sorted(os.listdir(restored)) == ['checkpoints', 'config.json',
                                          'history.jsonl', 'segments.jsonl']
  assert (restored / 'segments.jsonl').read_text() == '{"from_step": 0}\n'
  assert os.listdir(restored / 'checkpoints') == ['2750']
  assert (restored / 'checkpoints' / '2750' / 'default' /
          'blob').read_text() == 'state at 2750'
  assert (restored / 'history.jsonl').read_text() == '{"step": 250}\n'
  # A run folder already there is never overwritten.
  (restored / 'history.jsonl').write_text('newer')
  out = _carry(tmp_path, 'unpack', RUNS=str(fresh))
  assert 'kept' in out and (restored / 'history.jsonl').read_text() == 'newer'


def test_carry_runs_unpacks_nothing_of_a_damaged_archive(tmp_path):
  runs = tmp_path / 'runs'
  for run in ('dfs-nar-s0', 'scc-nar-s1'):
    _runs(runs, {run: False})
    (runs / run / 'config.json').write_text('{}')
    _checkpoint(runs / run, 500)
  _carry(tmp_path, 'pack', RUNS=str(runs))
  carry = tmp_path / 'carry'
  # One archive cut short (as by a failed copy), one named after another run.
  whole = (carry / 'dfs-nar-s0.tar.gz').read_bytes()
  (carry / 'dfs-nar-s0.tar.gz').write_bytes(whole[:len(whole) // 2])
  (carry / 'scc-nar-s1.tar.gz').rename(carry / 'scc-nar-s2.tar.gz')
  (carry / 'bfs-nar-s0.tar.gz').write_bytes(whole)
  fresh = tmp_path / 'fresh'
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / 'carry_runs.sh'), 'unpack'],
      capture_output=True, text=True, check=False, timeout=120,
      env=dict(os.environ, CARRY=str(carry), RUNS=str(fresh)))
  assert proc.returncode == 1
  errors = proc.stderr.strip().splitlines()
  assert len(errors) == 3, proc.stderr
  assert errors[0].startswith(
      f'error: {carry}/bfs-nar-s0.tar.gz holds no config.json and checkpoint '
      'of bfs-nar-s0')
  assert errors[1].startswith(
      f'error: {carry}/dfs-nar-s0.tar.gz is damaged, dfs-nar-s0 not unpacked')
  assert errors[2].startswith(f'error: {carry}/scc-nar-s2.tar.gz holds no')
  # No half run left for the worker to resume, and no scratch folder.
  assert os.listdir(fresh) == []


def test_carry_runs_refuses_an_unknown_command(tmp_path):
  proc = subprocess.run(
      ['bash', str(ROOT / 'results' / 'carry_runs.sh'), 'push'],
      capture_output=True, text=True, check=False, timeout=60)
  assert proc.returncode == 2
  assert proc.stderr.strip() == 'usage: bash results/carry_runs.sh pack|unpack'


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
  sweep = tmp_path / 'longer.py'
  sweep.write_text(_LONGER_SWEEP.format(root=str(ROOT)))
  runs = tmp_path / 'runs'
  env = dict(os.environ, SWEEP=str(sweep), SHORT='2', RUNS=str(runs),
             DATA=str(tmp_path / 'data'), ALGS='minimum', CORE='0',
             PATH=f'{pathlib.Path(sys.executable).parent}:{os.environ["PATH"]}')

  def run():
    proc = subprocess.run(['bash', str(ROOT / 'results' / 'run_longer.sh')],
                          capture_output=True, text=True, check=False,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

  run()
  assert [p.name for p in runs.iterdir()] == ['minimum-dear-t-s0']  # ALGS
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
