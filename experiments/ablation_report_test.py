"""experiments.ablation_report: evaluation-only ablations as one table."""

import json

from experiments import ablation_report


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
