"""Tests of the figures of experiments.report (report_figures)."""

import os

import pytest

from experiments import report_figures


def run(seed, scores, tests=None):
  history = [{'step': 100 * i, 'val_score': s, 'val_loss': 1.0 - s}
             for i, s in enumerate(scores)]
  for i, t in (tests or {}).items():
    history[i]['test_scores'] = {'64': t}
  return {'algorithm': 'bfs', 'model': 'dear', 'seed': seed,
          'history': history}


def test_curve_averages_the_runs_step_by_step():
  runs = [run(0, [0.1, 0.5, 0.9]), run(1, [0.3, 0.7])]
  steps, mean, low, high = report_figures.curve(
      runs, lambda e: e.get('val_score'))
  # Step 200 has one run only: left out, so every point averages both.
  assert steps == [0, 100]
  assert mean == pytest.approx([0.2, 0.6])
  assert low == pytest.approx([0.1, 0.5])
  assert high == pytest.approx([0.3, 0.7])
  steps, mean, _, _ = report_figures.curve(
      [run(0, [0.1, 0.5, 0.9], tests={0: 0.05, 2: 0.8})],
      lambda e: e.get('test_scores', {}).get('64'))
  assert steps == [0, 200] and mean == pytest.approx([0.05, 0.8])


def test_plot_learning_curves_writes_a_png(tmp_path):
  groups = {('bfs', 'dear'): [run(0, [0.1, 0.5], tests={1: 0.4})],
            ('bfs', 'nar'): [run(0, [0.2, 0.6])],
            ('dfs', 'dear'): [run(0, [0.0, 0.3])]}
  path = str(tmp_path / 'curves.png')
  report_figures.plot_learning_curves(groups, path)
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert os.path.getsize(path) > 10_000


def test_step_ticks_read_in_thousands():
  labels = [report_figures._thousands(s) for s in (0, 500, 1000, 2500, 15000)]
  assert labels == ['0', '500', '1k', '2.5k', '15k']
