"""Tests of the solver-schedule table (score and iterations per graph)."""

import json

import pytest

from experiments import report_iterations


def _record(overrides, scores, iterations, model='dear'):
  """An experiments.evaluate record; ``iterations``: size -> (mean, max,
  converged fraction)."""
  return {
      'algorithm': 'bellman_ford', 'model': model, 'seed': 0,
      'checkpoint_step': 5000, 'params_step': 4250,
      'solver_overrides': overrides,
      'test_scores': {size: {'pi': s, 'score': s}
                      for size, s in scores.items()},
      'solver': {size: {'graphs': 100, 'iterations_mean': m,
                        'iterations_max': x, 'converged_fraction': c,
                        'rel_residual_mean': 0.09, 'rel_residual_max': 0.1}
                 for size, (m, x, c) in iterations.items()}}


def _write(folder, records):
  folder.mkdir(parents=True, exist_ok=True)
  for name, record in records.items():
    (folder / f'{name}.json').write_text(json.dumps(record))


def test_one_row_per_schedule_and_size_in_order(tmp_path):
  _write(tmp_path, {
      # File names out of the table's order: the table sorts.
      'a': _record({'solver': 'anderson_growing', 'return_best': True},
                   {'64': 0.9, '128': 0.8},
                   {'64': (9.5, 30, 1.0), '128': (20.25, 160, 0.97)}),
      'b': _record({'solver': 'anderson'}, {'128': 0.81, '64': 0.91},
                   {'64': (12.0, 40, 1.0), '128': (25.0, 160, 0.95)}),
      'c': _record({'solver': 'anderson_growing', 'rel_tol': 0.01},
                   {'64': 0.92}, {'64': (30.0, 90, 1.0)}),
  })
  text = report_iterations.build(tmp_path)
  table = [line for line in text.splitlines() if line.startswith('| bell')]
  assert table == [
      '| bellman_ford | 0 | 4,250 | anderson | run\'s | - | 64 | 100 | '
      '0.910 | 12.00 | 40 | 1.00 |',
      '| bellman_ford | 0 | 4,250 | anderson | run\'s | - | 128 | 100 | '
      '0.810 | 25.00 | 160 | 0.95 |',
      '| bellman_ford | 0 | 4,250 | anderson_growing | on | - | 64 | 100 | '
      '0.900 | 9.50 | 30 | 1.00 |',
      '| bellman_ford | 0 | 4,250 | anderson_growing | on | - | 128 | 100 | '
      '0.800 | 20.25 | 160 | 0.97 |',
      '| bellman_ford | 0 | 4,250 | anderson_growing | run\'s | rel_tol=0.01 '
      '| 64 | 100 | 0.920 | 30.00 | 90 | 1.00 |',
  ]
  assert report_iterations.NOTE in text


def test_no_records_build_nothing(tmp_path):
  assert report_iterations.build(tmp_path / 'absent') is None
  (tmp_path / 'empty').mkdir()
  assert report_iterations.build(tmp_path / 'empty') is None


def test_a_record_that_is_not_a_dear_evaluation_is_refused(tmp_path):
  _write(tmp_path, {'nar': _record({}, {'64': 0.9}, {'64': (1, 1, 1)},
                                   model='nar')})
  with pytest.raises(ValueError, match='not an experiments.evaluate record'):
    report_iterations.build(tmp_path)
