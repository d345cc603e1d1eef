"""The benchmark's bookkeeping (not its timings: those are never asserted)."""

import json
import os
import subprocess
import sys

import pytest

from deq_clrs import benchmarking


@pytest.fixture(scope='module')
def tiny_results():
  config = benchmarking.BenchmarkConfig(
      algorithms=('bfs',), sizes=(8,), train_size=8, batch_size=2,
      hidden_size=8, repeats=2, models=('dear_phantom', 'nar'),
      memory_caps=(3, 30))
  return benchmarking.run(config, log=lambda msg: None)


def test_results_have_every_measurement(tiny_results):
  res = tiny_results['algorithms']['bfs']
  assert set(res['models']) == {'dear_phantom', 'nar'}
  for name, m in res['models'].items():
    assert m['train_step']['median_s'] > 0
    assert m['train_step']['memory_bytes'] > 0
    assert m['train_step']['batches'] == 3
    inf = m['inference']['8']
    assert inf['seconds_per_sample'] == pytest.approx(inf['median_s'] / 2)
    assert inf['memory_bytes'] > 0
  # DEAR reports its solver; the one-shot model compiles once for all
  # batches (its shapes never depend on the trajectory length).
  dear = res['models']['dear_phantom']
  # Iterations are counted on every batch (3 batches of 2 graphs).
  assert dear['inference']['8']['solver']['graphs'] == 2 * 3
  assert dear['train_step']['recompilations'] == 0
  assert dear['inference']['8']['recompilations'] == 0
  assert res['gt_steps_mean']['8'] >= 1
  json.dumps(tiny_results)  # JSON-ready


def test_ratios_are_dear_over_baseline(tiny_results):
  res = tiny_results['algorithms']['bfs']
  r = res['ratios']['dear_phantom/nar']
  d, n = res['models']['dear_phantom'], res['models']['nar']
  assert r['train_step_time'] == pytest.approx(
      d['train_step']['median_s'] / n['train_step']['median_s'])
  assert r['inference_memory_8'] == pytest.approx(
      d['inference']['8']['memory_bytes'] / n['inference']['8']['memory_bytes'])
  assert 'dear_phantom/nar' in benchmarking.format_table(tiny_results)


def test_dear_training_memory_is_flat_in_the_iteration_cap(tiny_results):
  # XLA's compiled memory is deterministic: a phantom-gradient step needs the
  # same memory whether the solver may run 3 or 30 iterations.
  mem = tiny_results['algorithms']['bfs']['dear_train_memory_by_cap']['bytes']
  assert mem['3'] == mem['30']


def test_bad_benchmark_config_is_refused():
  with pytest.raises(ValueError, match='unknown algorithm'):
    benchmarking.BenchmarkConfig(algorithms=('quicksortt',))
  with pytest.raises(ValueError, match='unknown model'):
    benchmarking.BenchmarkConfig(models=('gpt',))



def test_the_output_folder_is_made_before_measuring(tmp_path):
  output = tmp_path / 'new' / 'folder' / 'bench.json'
  benchmarking.prepare_output(str(output))
  assert (tmp_path / 'new' / 'folder').is_dir()
  assert not os.listdir(tmp_path / 'new' / 'folder')  # the probe is gone


def test_an_unwritable_output_is_refused_before_measuring(tmp_path):
  (tmp_path / 'file').write_text('')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.benchmark', '--algorithms=bfs',
       f'--output={tmp_path / "file" / "bench.json"}'],
      cwd=root, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(
      f'error: cannot write --output={tmp_path / "file" / "bench.json"} (')
  assert last.endswith('); choose a file in a folder you can write to')
  assert 'train step' not in proc.stderr  # nothing was measured
