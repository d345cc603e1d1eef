"""experiments.report turns results.json files into a table and plots."""

import json
import os

from experiments import report


def fake_run(model, seed, score, solver):
  return {
      'algorithm': 'bfs', 'model': model, 'seed': seed,
      'config': {'val_size': 16, 'tag': ''}, 'val_score': 0.9,
      'test_scores': {'64': {'score': score, 'pi': score}},
      'gt_steps_mean': {'64': 3.5},
      'solver': {'64': solver} if solver else None,
      'seconds_per_sample': {'64': 0.01}, 'train_seconds': 60.0,
      'train_steps': 200,
  }


def test_report_writes_table_and_plots(tmp_path):
  runs = tmp_path / 'runs'
  solver = {'iterations_mean': 4.0, 'iterations_max': 6,
            'converged_fraction': 1.0}
  for name, run in {'d0': fake_run('dear', 0, 0.8, solver),
                    'd1': fake_run('dear', 1, 0.6, solver),
                    'n0': fake_run('nar', 0, 0.5, None)}.items():
    os.makedirs(runs / name)
    with open(runs / name / 'results.json', 'w') as f:
      json.dump(run, f)
  # An evaluation-only result beside a run adds a test size.
  with open(runs / 'n0' / 'eval_results.json', 'w') as f:
    json.dump({'params': 'best', 'test_scores': {'128': {'score': 0.25}},
               'gt_steps_mean': {'128': 4.0},
               'seconds_per_sample': {'128': 0.02}, 'solver': None}, f)
  out = tmp_path / 'out'
  report.write_report(str(runs), str(out))
  table = (out / 'table.md').read_text().splitlines()
  assert 'test (64)' in table[0] and 'test (128)' in table[0]
  dear = next(line for line in table if '| dear |' in line)
  nar = next(line for line in table if '| nar |' in line)
  assert '0.700 ± 0.100' in dear  # mean ± std over the two seeds
  assert '4.0 / 6' in dear
  assert '0.250' in nar and '0.500' in nar
  for name in ('accuracy_vs_size.png', 'iterations_vs_steps.png'):
    assert (out / name).stat().st_size > 1000
  assert len(os.listdir(out / 'runs')) == 3
