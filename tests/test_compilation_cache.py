"""End to end: a rerun loads its compiled programs from the persistent
compilation cache, says so in its log, and scores exactly as the first run."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHED = 'loaded from the persistent compilation cache'


def _train(workdir, data_dir, cache_dir):
  env = {k: v for k, v in os.environ.items()
         if k != 'JAX_COMPILATION_CACHE_DIR'}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.train',
       '--config=' + os.path.join(ROOT, 'experiments', 'configs', 'test.py'),
       '--model=dear', f'--workdir={workdir}', f'--data_dir={data_dir}',
       f'--config.compilation_cache_dir={cache_dir}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    return proc.stderr, json.load(f)


@pytest.mark.slow
def test_a_rerun_loads_its_programs_from_the_cache(tmp_path):
  data, cache = tmp_path / 'data', tmp_path / 'xla'
  first_log, first = _train(tmp_path / 'a', data, cache)
  assert f'persistent compilation cache: {cache}' in first_log
  assert any(cache.iterdir())
  # The first run compiled its training step and its validation.
  assert re.search(r'compiling the training step for 4 graphs of 8 nodes: '
                   r'1 program compiled', first_log), first_log[-3000:]
  second_log, second = _train(tmp_path / 'b', data, cache)
  # The same programs now come from the cache: the training step and the
  # evaluation passes (their solver statistics come as Haiku state, not a
  # host callback, which JAX would never cache).
  step = re.search(r'compiling the training step for 4 graphs of 8 nodes: '
                   r'(.*)', second_log)
  assert step and CACHED in step.group(1) and 'compiled' not in step.group(
      1).replace(CACHED, ''), second_log[-3000:]
  validation = re.search(r'validating \(8 graphs of 8 nodes.*?\): (.*)',
                         second_log)
  assert validation and CACHED in validation.group(1), second_log[-3000:]
  assert second['test_scores'] == first['test_scores']
  assert second['solver'] == first['solver']
