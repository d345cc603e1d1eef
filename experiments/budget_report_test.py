"""The comparison of DEAR at the table's budget with its longer runs, and
the command (``python -m experiments.budget_report``, run as a subprocess:
its flags are defined only when it runs)."""

import json
import pathlib
import subprocess
import sys

from experiments import budget_report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(algorithm, model, seed, score, *, steps=5000, tag='', best=None,
         seconds=100.0, **config):
  return {
      'algorithm': algorithm, 'model': model, 'seed': seed,
      'config': {'tag': tag, 'seed': seed, 'train_steps': steps,
                 'learning_rate': 3e-4, **config},
      'val_score': 0.9, 'test_scores': {'64': {'score': score}},
      'best_step': steps if best is None else best, 'train_steps': steps,
      'train_seconds': seconds}


def _files(folder, runs):
  folder.mkdir()
  for i, run in enumerate(runs):
    (folder / f'{i}.results.json').write_text(json.dumps(run))
  return str(folder)


def test_a_longer_run_is_set_beside_its_snapshot_and_the_table():
  runs = [_run('bfs', 'nar', s, v, seconds=400.0)
          for s, v in ((0, 0.9), (1, 0.8), (2, 0.7))]
  runs += [_run('bfs', 'dear', 0, 0.6), _run('bfs', 'dear', 1, 0.5),
           _run('bfs', 'dear', 0, 0.75, steps=15000, tag='steps15k',
                best=12000, seconds=300.0)]
  snapshot = _run('bfs', 'dear', 0, 0.65, tag='steps15k', best=4750)
  # A snapshot of another config is not this run's.
  other = _run('bfs', 'dear', 0, 0.1, tag='steps15k', learning_rate=1e-3)
  out, skipped = budget_report.rows(runs, [snapshot, other], 'steps15k')
  assert skipped == []
  [c] = out
  assert (c['algorithm'], c['seed']) == ('bfs', 0)
  assert c['nar'] == {0: 0.9, 1: 0.8, 2: 0.7}
  assert c['table']['test_scores']['64']['score'] == 0.6
  assert c['short'] is snapshot
  md = budget_report.markdown(out).splitlines()
  assert len(md) == 5 and md[-1] == budget_report.STD_NOTE
  cells = [x.strip() for x in md[2].strip('|').split('|')]
  assert cells == ['bfs', '0', '0.800 ± 0.082 (0,1,2)', '0.600',
                   '0.650 (step 4750)', '0.750 (step 12000)', '15000',
                   '+0.100', '400', '100 / 300']


def test_a_table_run_of_another_config_is_not_compared():
  runs = [_run('bfs', 'dear', 0, 0.6, learning_rate=1e-3),
          _run('bfs', 'dear', 0, 0.75, steps=15000, tag='steps15k')]
  out, skipped = budget_report.rows(runs, [], 'steps15k')
  assert out[0]['table'] is None and out[0]['short'] is None
  assert skipped == ["bfs seed 0: the table's dear run has another config, "
                     'not compared']
  cells = [x.strip() for x in
           budget_report.markdown(out).splitlines()[2].strip('|').split('|')]
  assert cells[2:6] == ['-', '-', '-', '0.750 (step 15000)']
  assert cells[7] == '-'


def test_the_command_writes_the_table_and_refuses_what_it_cannot_read(
    tmp_path):
  runs = _files(tmp_path / 'runs', [
      _run('bfs', 'nar', 0, 0.9),
      _run('bfs', 'dear', 0, 0.75, steps=15000, tag='steps15k')])
  snaps = _files(tmp_path / 'snaps', [_run('bfs', 'dear', 0, 0.7,
                                           tag='steps15k')])
  (tmp_path / 'snaps' / 'junk.json').write_text('[1]')
  out = tmp_path / 'budget.md'
  cmd = [sys.executable, '-m', 'experiments.budget_report', f'--runs={runs}',
         f'--snapshots={snaps}', f'--out={out}']
  done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr
  assert 'skipped junk.json' in done.stdout
  assert '| bfs | 0 | 0.900 ± 0.000 (0) | - | 0.700 (step 5000) |' in (
      out.read_text())
  bad = subprocess.run(cmd[:-2] + [f'--snapshots={tmp_path / "nope"}',
                                   f'--out={out}'],
                       cwd=ROOT, capture_output=True, text=True, check=False)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1] == (
      f'error: --snapshots={tmp_path / "nope"} is not a directory')
  none = subprocess.run(cmd[:-1] + ['--tag=other', f'--out={out}'],
                        cwd=ROOT, capture_output=True, text=True, check=False)
  assert none.returncode == 1
  assert 'no run labelled dear:other' in none.stderr


def test_runs_of_one_label_and_seed_in_two_configs_are_not_guessed_between():
  runs = [_run('bfs', 'nar', 0, 0.9), _run('bfs', 'nar', 0, 0.1, hidden=8),
          _run('bfs', 'nar', 1, 0.8),
          _run('bfs', 'dear', 0, 0.75, steps=15000, tag='steps15k'),
          _run('dfs', 'dear', 0, 0.5, steps=15000, tag='steps15k'),
          _run('dfs', 'dear', 0, 0.4, steps=15000, tag='steps15k', hidden=8)]
  out, skipped = budget_report.rows(runs, [], 'steps15k')
  [c] = out
  assert c['algorithm'] == 'bfs' and c['nar'] == {1: 0.8}
  assert sorted(skipped) == [
      'bfs nar seed 0: 2 runs of different configs, none used',
      'dfs dear:steps15k seed 0: 2 runs of different configs, none used']
