"""The device check: its parsers, its refusals and a small run on the CPU."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from launch import device_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('output, expected', [
    ('..........                                 [100%]\n'
     '11 passed in 61.20s (0:01:01)\n',
     {'passed': 11, 'seconds': 61.2}),
    ('FAILED deq_clrs/solvers_test.py::test_x - AssertionError\n'
     '1 failed, 10 passed, 2 warnings in 3.05s\n',
     {'passed': 10, 'failed': 1, 'warnings': 2, 'seconds': 3.05}),
    ('=========== 1 error, 3 skipped, 1 xfailed in 0.51s ===========\n',
     {'errors': 1, 'skipped': 3, 'xfailed': 1, 'seconds': 0.51}),
    ('2 passed, 1 deselected in 7s\n', {'passed': 2, 'deselected': 1,
                                         'seconds': 7.0}),
    ('no tests ran in 0.01s\n', {'passed': 0, 'seconds': 0.01}),
])
def test_the_summary_line_gives_the_counts(output, expected):
  counts = device_check.parse_pytest_summary(output)
  for key in ('passed', 'failed', 'errors', 'skipped', 'warnings'):
    assert counts[key] == expected.get(key, 0), key
  assert counts['seconds'] == expected['seconds']


def test_a_run_without_a_summary_line_has_no_counts():
  assert device_check.parse_pytest_summary('.....\nKilled\n') is None
  assert device_check.parse_pytest_summary('') is None


def test_the_durations_report_is_read_slowest_first():
  output = ('============ slowest 3 durations ============\n'
            '2.50s call     deq_clrs/solvers_test.py::test_a[anderson]\n'
            '7.01s call     deq_clrs/oracles_test.py::test_b\n'
            '0.30s setup    deq_clrs/deq_test.py::test_c\n'
            '11 passed in 12.00s\n')
  assert device_check.parse_durations(output) == [
      {'seconds': 7.01, 'phase': 'call',
       'test': 'deq_clrs/oracles_test.py::test_b'},
      {'seconds': 2.5, 'phase': 'call',
       'test': 'deq_clrs/solvers_test.py::test_a[anderson]'},
      {'seconds': 0.3, 'phase': 'setup',
       'test': 'deq_clrs/deq_test.py::test_c'}]


def test_the_default_tests_exist():
  for test_id in device_check.TESTS:
    path, name = test_id.split('::')
    assert f'def {name}(' in (ROOT / path).read_text(), test_id


@pytest.mark.parametrize('algorithms, models, steps, batches, message', [
    (['bellman_ford'], ['dear'], 0, 4, 'steps'),
    (['bellman_ford'], ['dear'], 5, 0, 'batches'),
    (['bellman_fort'], ['dear'], 5, 4, "unknown algorithm 'bellman_fort'"),
    (['bellman_ford'], ['deer'], 5, 4, "unknown model 'deer'"),
    ([], ['dear'], 5, 4, 'at least one'),
])
def test_bad_settings_are_refused(algorithms, models, steps, batches,
                                  message):
  with pytest.raises(ValueError, match=message):
    device_check.check_settings(algorithms, models, steps, batches)


def test_a_bad_compute_dtype_is_refused():
  with pytest.raises(ValueError, match="compute_dtype 'float16'"):
    device_check.check_settings(['bellman_ford'], ['dear'], 5, 4,
                                ('float16',))
  with pytest.raises(ValueError, match='at least one'):
    device_check.check_settings(['bellman_ford'], ['dear'], 5, 4, ())


def test_the_command_refuses_a_bad_flag_in_one_line(tmp_path):
  run = subprocess.run(
      [sys.executable, '-m', 'launch.device_check', '--models=deer',
       f'--output={tmp_path / "x.json"}'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert run.returncode == 1
  assert run.stderr.strip().splitlines()[-1].startswith(
      "error: unknown model 'deer'")
  assert not (tmp_path / 'x.json').exists()


@pytest.mark.slow
def test_the_small_check_runs_on_the_cpu(tmp_path):
  output = tmp_path / 'check.json'
  tests = ['deq_clrs/solvers_test.py::'
           'test_forward_solvers_reach_the_fixed_point',
           'deq_clrs/oracles_test.py::test_float32_is_exact_at_64_nodes']
  run = subprocess.run(
      [sys.executable, '-m', 'launch.device_check', '--steps=3',
       '--compute_dtypes=float32,bfloat16',
       f'--tests={",".join(tests)}', f'--output={output}'],
      cwd=ROOT, capture_output=True, text=True, timeout=900,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert run.returncode == 0, run.stderr[-3000:]
  record = json.loads(output.read_text())
  assert record['mode'] == 'small'  # automatic on a CPU
  assert record['devices']['platform'] == 'cpu'
  assert record['devices']['devices'][0]['platform'] == 'cpu'
  assert record['versions']['jax'] and record['versions']['dm-clrs']
  counts = record['tests']['counts']
  assert record['tests']['ok'] and counts['passed'] > 0
  assert counts['failed'] == counts['errors'] == 0
  rows = {(r['algorithm'], r['model'], r['compute_dtype']): r
          for r in record['timings']}
  assert set(rows) == {(a, m, d) for a in device_check.ALGORITHMS
                       for m in device_check.MODELS
                       for d in ('float32', 'bfloat16')}
  for row in rows.values():
    assert row['steps'] == 3
    assert row['compile_s'] > 0 and row['step_s'] > 0
    assert row['host_batch_s'] > 0
    assert row['recompilations'] == 0
  assert record['settings']['hidden_size'] == 16
  assert set(record['phases_s']) == {'tests', 'devices', 'timing', 'total'}
  assert 'tests: ok' in run.stdout and 'ms/step' in run.stdout
  assert 'ms/batch' in run.stdout
