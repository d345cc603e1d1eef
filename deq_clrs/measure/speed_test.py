"""The benchmark's bookkeeping (not its timings: those are never asserted).

The tests that run a benchmark take minutes on a 2-core CPU: they are marked
slow (CI runs them with --runslow)."""

import json
import os
import subprocess
import sys

import pytest

from deq_clrs.measure import speed


@pytest.fixture(scope='module')
def tiny_results():
  config = speed.BenchmarkConfig(
      algorithms=('bfs',), sizes=(8,), train_size=8, batch_size=2,
      hidden_size=8, repeats=2, models=('dear_phantom', 'nar'),
      memory_caps=(3, 30))
  return speed.run(config, log=lambda msg: None)


@pytest.mark.slow
def test_a_profiled_run_writes_a_trace(tmp_path):
  config = speed.BenchmarkConfig(
      algorithms=('bfs',), sizes=(8,), train_size=8, batch_size=2,
      hidden_size=8, repeats=1, models=('nar',), memory_caps=(3,))
  results = speed.run(config, log=lambda msg: None,
                      profile_dir=str(tmp_path / 'trace'))
  assert results['profile_dir'] == str(tmp_path / 'trace')
  traces = list((tmp_path / 'trace').rglob('*.xplane.pb'))
  assert len(traces) == 1 and traces[0].stat().st_size > 0
  assert results['algorithms']['bfs']['models']['nar']['train_step'][
      'median_s'] > 0


@pytest.mark.slow
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


@pytest.mark.slow
def test_ratios_are_dear_over_baseline(tiny_results):
  res = tiny_results['algorithms']['bfs']
  r = res['ratios']['dear_phantom/nar']
  d, n = res['models']['dear_phantom'], res['models']['nar']
  assert r['train_step_time'] == pytest.approx(
      d['train_step']['median_s'] / n['train_step']['median_s'])
  assert r['inference_memory_8'] == pytest.approx(
      d['inference']['8']['memory_bytes'] / n['inference']['8']['memory_bytes'])
  assert 'dear_phantom/nar' in speed.format_table(tiny_results)


@pytest.mark.slow
def test_dear_training_memory_is_flat_in_the_iteration_cap(tiny_results):
  # XLA's compiled memory is deterministic: a phantom-gradient step needs the
  # same memory whether the solver may run 3 or 30 iterations.
  mem = tiny_results['algorithms']['bfs']['dear_train_memory_by_cap']['bytes']
  assert mem['3'] == mem['30']


def test_bad_benchmark_config_is_refused():
  with pytest.raises(ValueError, match='unknown algorithm'):
    speed.BenchmarkConfig(algorithms=('quicksortt',))
  with pytest.raises(ValueError, match='unknown model'):
    speed.BenchmarkConfig(models=('gpt',))


def test_the_compile_counter_counts_only_while_open():
  import jax
  import jax.numpy as jnp

  counter = speed.CompileCounter()
  with counter:
    jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(7.0)).block_until_ready()
  assert counter.count >= 1
  seen = counter.count
  jax.jit(lambda x: x * 5.0 - 2.0)(jnp.arange(9.0)).block_until_ready()
  assert counter.count == seen  # closed: no longer listening


@pytest.mark.parametrize('name', ['benchmark', 'benchmark_train64',
                                  'benchmark_allocator.default',
                                  'benchmark_allocator.tuned'])
def test_the_table_of_a_stored_record_is_unchanged(name):
  # results/*.md are rebuilt from the stored records through format_table.
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  record = os.path.join(root, 'results', f'{name}.json')
  with open(record) as f:
    table = speed.format_table(json.load(f))
  with open(os.path.join(root, 'results', f'{name}.md')) as f:
    assert table + '\n' == f.read()


def test_the_output_folder_is_made_before_measuring(tmp_path):
  output = tmp_path / 'new' / 'folder' / 'bench.json'
  speed.prepare_output(str(output))
  assert (tmp_path / 'new' / 'folder').is_dir()
  assert not os.listdir(tmp_path / 'new' / 'folder')  # the probe is gone


def test_an_unwritable_output_is_refused_before_measuring(tmp_path):
  (tmp_path / 'file').write_text('')
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
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
