"""experiments.ablation_report: evaluation-only ablations as one table."""

import json
import os
import subprocess
import sys

from experiments import ablation_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _result(algorithm, overrides, score, its=(5.0, 9), converged=1.0):
  return {'algorithm': algorithm, 'model': 'dear', 'seed': 0,
          'solver_overrides': overrides,
          'test_scores': {'64': {'score': score}},
          'solver': {'64': {'iterations_mean': its[0],
                            'iterations_max': its[1],
                            'converged_fraction': converged}}}


def test_rows_compare_each_setting_with_the_run_as_trained(tmp_path):
  files = {
      'bfs.default.json': _result('bfs', {}, 0.98),
      'bfs.tol.json': _result('bfs', {'rel_tol': 0.01}, 0.99, (12.6, 22)),
      'bfs.cap.json': _result('bfs', {'eval_max_iter': 20}, 0.90, (20.0, 20),
                              0.25),
      'mst.tol.json': _result('mst_prim', {'rel_tol': 0.01}, 0.7),
      'notes.json': {'something': 'else'},
  }
  for name, content in files.items():
    (tmp_path / name).write_text(json.dumps(content))
  (tmp_path / 'broken.json').write_text('{')
  results, skipped = ablation_report.load(str(tmp_path))
  assert sorted(skipped) == ['broken.json', 'notes.json']
  lines = ablation_report.markdown(results).splitlines()
  rows = [line.split(' | ') for line in lines[2:]]
  assert [(r[0].strip('| '), r[2]) for r in rows] == [
      ('bfs', 'as trained'), ('bfs', 'eval_max_iter=20'),
      ('bfs', 'rel_tol=0.01'), ('mst_prim', 'rel_tol=0.01')]
  by_setting = {r[2]: r for r in rows if r[0].strip('| ') == 'bfs'}
  assert by_setting['rel_tol=0.01'][4:7] == ['0.990', '+0.010', '12.6 / 22']
  assert by_setting['eval_max_iter=20'][5] == '-0.080'
  assert by_setting['eval_max_iter=20'][7] == '0.25 |'
  # No run as trained to compare with: no difference.
  assert rows[-1][5] == '-'


def test_the_flags_are_defined_only_when_the_command_runs():
  """Importing the module (as rebuild_results does, beside
  experiments.report and its --out) registers no flag."""
  from absl import flags

  from experiments import budget_report
  from experiments import report  # noqa: F401  (defines --runs and --out)
  assert 'files' not in flags.FLAGS
  for module, argv in ((ablation_report, ['--files=a', '--out=b']),
                       (budget_report, ['--runs=r', '--snapshots=s',
                                        '--out=b'])):
    values = flags.FlagValues()
    module.define_flags(values)
    values(['prog', *argv])
    assert values.out == 'b'
  assert values.tag == 'steps15k'


def _command(*args):
  """``python -m experiments.ablation_report *args`` (a subprocess: its
  flags are defined only when it runs)."""
  return subprocess.run(
      [sys.executable, '-m', 'experiments.ablation_report', *args], cwd=ROOT,
      env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
      timeout=300)


def _assert_one_line_error(proc, message):
  """Status 1, no traceback, and ``error: <message>`` as the last line."""
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and message in last, last


def test_the_command_writes_the_table_or_fails_in_one_line(tmp_path):
  files = tmp_path / 'files'
  files.mkdir()
  (files / 'bfs.json').write_text(json.dumps({
      'algorithm': 'bfs', 'model': 'dear', 'seed': 0,
      'solver_overrides': {}, 'test_scores': {'64': {'score': 0.5}},
      'solver': None}))
  out = tmp_path / 'ablations.md'
  proc = _command(f'--files={files}', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '| bfs | 0 | as trained | 64 | 0.500 | - | - | - |' in (
      out.read_text())
  proc = _command(f'--files={tmp_path / "none"}', f'--out={out}')
  _assert_one_line_error(
      proc, f'--files={tmp_path / "none"} is not a directory')
  (files / 'bfs.json').unlink()
  proc = _command(f'--files={files}', f'--out={out}')
  _assert_one_line_error(proc, 'no evaluation results under')
