"""Checks a new machine in one command: its devices, numerics and speed.

    python -m launch.device_check --output=device_check.json

In that order (the tests run first, in a fresh process, because a TPU can be
opened by one process at a time and this one opens it next):

1. the numerical tests that matter on a new device (fixed-point solvers,
   implicit and phantom gradients, the equilibrium layer, the oracle cells'
   exactness in float32): ``python -m pytest -q -n 0 <ids>`` in a
   subprocess, with its counts, its slowest tests and the tail of its output;
2. the devices JAX sees (platform, kind, count, memory statistics where the
   device gives them) and the versions of jax, jaxlib, flax and dm-clrs;
3. the training step of ``dear`` and ``nar`` on ``bellman_ford`` and
   ``insertion_sort`` at the paper's config (``experiments/configs/
   dear_paper.py``: latent 128, batch 32, Adam 3e-4), built as
   ``experiments.train`` builds it: the first step's compile time, the
   seconds per step over ``--steps`` more steps (300 by default) on a few
   batches of the largest training size, waited for at the end, and the
   host's seconds to prepare one batch; on an accelerator also with the
   cell in bfloat16 (``--compute_dtypes``).

Everything goes into one JSON file (``--output``), and a short summary is
printed. On a CPU (or with ``--small``) the config is the tests' tiny one
and 5 steps are timed. A failed test or timing ends the program with
status 1, after the file is written (the file is also written after each
phase, so a crash keeps what was measured before it).
"""

# isort: split
from experiments import log_levels  # noqa: F401  (first: before jax)

# isort: split
import datetime
import json
import pathlib
import re
import subprocess
import sys
import time
from typing import Any

import ml_collections
from absl import app
from absl import flags

from deq_clrs.training import preflight
from deq_clrs.training import provenance
from experiments import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALGORITHMS = ('bellman_ford', 'insertion_sort')
MODELS = ('dear', 'nar')
# Fast tests whose numbers a new device (matmul precision, float64, while
# loops) could change: solvers reach the fixed point, implicit gradients
# match unrolled ones and finite differences, the phantom gradient is its
# formula, the oracle cells are exact (float32 at 64 nodes too), a bfloat16
# cell keeps a float32 solve: 25 tests, about a minute on a CPU core.
TESTS = (
    'deq_clrs/solvers_test.py::test_forward_solvers_reach_the_fixed_point',
    'deq_clrs/gradients_test.py::'
    'test_implicit_gradient_matches_unrolled_and_finite_differences',
    'deq_clrs/gradients_test.py::test_phantom_gradient_matches_its_formula',
    'deq_clrs/anderson_test.py::test_growing_anderson_follows_torchdeq',
    'deq_clrs/deq_test.py::'
    'test_implicit_gradient_of_dears_gated_cell_matches_unrolled',
    'deq_clrs/oracles_test.py::test_fixed_point_iteration_is_exact',
    'deq_clrs/oracles_test.py::test_float32_is_exact_at_64_nodes',
    'deq_clrs/oracles_test.py::test_implicit_gradient_is_exact_for_bellman_ford',
    'deq_clrs/deq_test.py::'
    'test_bfloat16_cell_keeps_a_float32_solve_and_close_gradients',
)
FULL_STEPS = 300
FULL_DTYPES, SMALL_DTYPES = ('float32', 'bfloat16'), ('float32',)  # timed
SMALL_STEPS = 5
TAIL_CHARS = 3000

_OUTPUT = flags.DEFINE_string('output', 'device_check.json',
                              'Where to write the JSON record.')
_SMALL = flags.DEFINE_bool(
    'small', None, "The tests' tiny config (experiments/configs/test.py) "
    'and 5 timed steps instead of the paper config and 300 steps. Default: '
    'small on a CPU, full on an accelerator.')
_STEPS = flags.DEFINE_integer(
    'steps', None, f'Timed training steps after the first (compiling) one '
    f'(default {FULL_STEPS}, {SMALL_STEPS} when small).')
_BATCHES = flags.DEFINE_integer(
    'batches', 4, 'Distinct generated batches the timed steps cycle through.')
_ALGORITHMS = flags.DEFINE_list('algorithms', list(ALGORITHMS),
                                'CLRS algorithms whose steps are timed.')
_MODELS = flags.DEFINE_list('models', list(MODELS), 'Models timed.')
_DTYPES = flags.DEFINE_list(
    'compute_dtypes', None, 'cell.compute_dtype values each model is timed '
    'with. Default: float32 and bfloat16 on an accelerator, float32 on a '
    'CPU (where bfloat16 matmuls are emulated, so slow).')
_TESTS = flags.DEFINE_list(
    'tests', list(TESTS), 'pytest ids run in a subprocess (empty: none).')
_TEST_TIMEOUT = flags.DEFINE_integer(
    'test_timeout', 420, 'Seconds the tests may take before they are '
    'stopped (and counted as failed).')


def now() -> str:
  """The time in ISO 8601, UTC, to the second."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds')


# --- The tests. ---

_COUNT = re.compile(r'(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|'
                    r'deselected|warnings?)\b')
_SUMMARY_TIME = re.compile(r'\bin (\d+(?:\.\d+)?)s\b')
_DURATION = re.compile(r'^(\d+(?:\.\d+)?)s (setup|call|teardown)\s+(\S+)')


def parse_pytest_summary(output: str) -> dict[str, Any] | None:
  """The counts of pytest's last summary line, e.g. ``'1 failed, 10
  passed, 2 warnings in 61.20s'`` -> ``{'passed': 10, 'failed': 1,
  'errors': 0, 'skipped': 0, 'xfailed': 0, 'xpassed': 0, 'deselected': 0,
  'warnings': 2, 'seconds': 61.2}``; None if the output has no summary
  line (pytest did not finish)."""
  for line in reversed(output.splitlines()):
    line = line.strip().strip('=').strip()
    seconds = _SUMMARY_TIME.search(line)
    if not seconds or not (_COUNT.search(line) or 'no tests ran' in line):
      continue
    counts = dict.fromkeys(('passed', 'failed', 'errors', 'skipped',
                            'xfailed', 'xpassed', 'deselected',
                            'warnings'), 0)
    for number, what in _COUNT.findall(line):
      what = {'error': 'errors', 'warning': 'warnings'}.get(what, what)
      counts[what] = int(number)
    counts['seconds'] = float(seconds.group(1))
    return counts
  return None


def parse_durations(output: str) -> list[dict[str, Any]]:
  """The lines of pytest's ``--durations`` report, as ``{'seconds',
  'phase', 'test'}``, slowest first."""
  found = []
  for line in output.splitlines():
    match = _DURATION.match(line.strip())
    if match:
      found.append({'seconds': float(match.group(1)),
                    'phase': match.group(2), 'test': match.group(3)})
  return sorted(found, key=lambda d: -d['seconds'])


def run_tests(ids: list[str], timeout: float) -> dict[str, Any]:
  """Runs pytest on ``ids`` in a fresh process from the repository root.

  Returns:
    ``{'command', 'returncode', 'counts' (None if pytest did not finish),
    'ok', 'seconds' (wall), 'slowest', 'tail'}``; a timeout gives
    returncode None and ``ok`` False.
  """
  command = [sys.executable, '-m', 'pytest', '-q', '-n', '0',
             '-p', 'no:cacheprovider', '--durations=5', *ids]
  start = time.perf_counter()
  try:
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, check=False)
    output, code = run.stdout + run.stderr, run.returncode
  except subprocess.TimeoutExpired as e:
    output = _text(e.stdout) + _text(e.stderr)
    output += f'\n(stopped after {timeout:.0f} s)'
    code = None
  counts = parse_pytest_summary(output)
  ok = (code == 0 and counts is not None and counts['passed'] > 0
        and not counts['failed'] and not counts['errors'])
  return {'command': command, 'returncode': code, 'counts': counts,
          'ok': ok, 'seconds': time.perf_counter() - start,
          'slowest': parse_durations(output)[:5],
          'tail': output[-TAIL_CHARS:]}


def _text(data: bytes | str | None) -> str:
  if data is None:
    return ''
  return data if isinstance(data, str) else data.decode(errors='replace')


# --- The devices. ---

def _memory_stats(device: Any) -> dict[str, int] | None:
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  (not on every backend)
    return None
  return {k: int(v) for k, v in stats.items()} if stats else None


def versions() -> dict[str, str | None]:
  """Installed versions of the packages whose numerics the check tests."""
  return provenance.package_versions(
      ('jax', 'jaxlib', 'flax', 'optax', 'dm-clrs', 'jaxopt'))


def device_info() -> dict[str, Any]:
  """The devices JAX computes on (this starts its backend)."""
  import jax  # pylint: disable=import-outside-toplevel
  return {
      'platform': jax.default_backend(),
      'count': jax.device_count(),
      'local_count': jax.local_device_count(),
      'process_count': jax.process_count(),
      'devices': [{'id': d.id, 'platform': d.platform,
                   'kind': d.device_kind, 'process_index': d.process_index,
                   'memory_stats': _memory_stats(d)}
                  for d in jax.local_devices()],
  }


# --- The training steps. ---

def timing_config(algorithm: str, model: str, small: bool,
                  compute_dtype: str = 'float32'
                  ) -> ml_collections.ConfigDict:
  """The run config whose training step is timed: the paper's, or the
  tests' tiny one, with the cell's ``compute_dtype``."""
  # pylint: disable=import-outside-toplevel
  from experiments.configs import dear_paper
  from experiments.configs import test as test_config
  config = (test_config if small else dear_paper).get_config()
  config.algorithm = algorithm
  config.model = model
  config.cell.compute_dtype = compute_dtype
  return config


def check_settings(algorithms: list[str], models: list[str], steps: int,
                   batches: int, dtypes: tuple[str, ...] = ('float32',)
                   ) -> None:
  """Refuses names and counts the check cannot use (before any work).

  Raises:
    ValueError: naming the setting and what is valid.
  """
  if steps < 1 or batches < 1:
    raise ValueError(f'--steps and --batches must be >= 1, got steps='
                     f'{steps} and batches={batches}')
  if not algorithms or not models or not dtypes:
    raise ValueError('--algorithms, --models and --compute_dtypes must name '
                     'at least one')
  for algorithm in algorithms:
    for model in models:
      for dtype in dtypes:
        preflight.check_config(timing_config(algorithm, model, True, dtype))


def _generate(config: ml_collections.ConfigDict, size: int,
              count: int) -> list[Any]:
  """``count`` batches of graphs of ``size`` nodes, drawn as the training
  pools are (edge probabilities, permutations), with one shape."""
  from deq_clrs.training import data as data_lib  # pylint: disable=import-outside-toplevel
  from deq_clrs.training import models as models_lib  # pylint: disable=import-outside-toplevel
  pool = data_lib.generate(
      config.algorithm, size, count * config.batch_size, config.data_seed,
      er_probs=tuple(config.er_probs),
      with_hints=models_lib.uses_hints(config),
      random_pos=config.random_pos)
  return data_lib.batches(pool, config.batch_size)


def time_training(config: ml_collections.ConfigDict, batches: list[Any],
                  steps: int) -> dict[str, Any]:
  """Builds a config's model as ``experiments.train`` does and times its
  training step.

  The first step is waited for (it compiles); then ``steps`` steps cycle
  through ``batches`` and are waited for once, at the end.

  Returns:
    ``{'build_s', 'host_batch_s' (mean seconds the host takes to prepare and
    place one batch: with prefetching, steps wait for the host only where it
    exceeds ``step_s``), 'first_step_s', 'compile_s' (XLA's own compile
    seconds in the first step), 'steps', 'step_s' (mean seconds per step
    after the first), 'steps_per_s', 'recompilations' (in the timed steps; 0
    unless the shapes change), 'final_loss', 'device_peak_bytes' (the
    largest memory device 0 has held in this process so far, where it
    reports it)}``.
  """
  # pylint: disable=import-outside-toplevel
  import jax

  from deq_clrs.training import models as models_lib
  from deq_clrs.training import parallel
  from deq_clrs.training import progress
  # pylint: enable=import-outside-toplevel
  start = time.perf_counter()
  models = models_lib.build_models(config, batches[0])
  stepper = models.stepper
  key = stepper.replicate(jax.random.PRNGKey(config.seed))
  state = jax.block_until_ready(models.initial_state)
  result = {'build_s': time.perf_counter() - start}
  # The host's work per batch, as the training loop's prefetch thread does
  # it: the step's inputs made from a drawn batch and placed on the devices.
  start = time.perf_counter()
  inputs = []
  for batch in batches:
    feedback, extras = models.train_inputs(batch)
    inputs.append((jax.block_until_ready(stepper.place(feedback)), extras))
  result['host_batch_s'] = (time.perf_counter() - start) / len(batches)
  with progress.CompileLog(min_seconds=0.0) as log:
    start = time.perf_counter()
    state = stepper.train_step(state, key, inputs[0][0], **inputs[0][1])
    jax.block_until_ready(state)
    result['first_step_s'] = time.perf_counter() - start
    result['compile_s'] = log.take().seconds
    start = time.perf_counter()
    for i in range(1, steps + 1):
      feedback, extras = inputs[i % len(inputs)]
      state = stepper.train_step(state, key, feedback, **extras)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    again = log.take()
  stats = _memory_stats(jax.local_devices()[0]) or {}
  result.update(
      steps=steps, step_s=seconds / steps, steps_per_s=steps / seconds,
      recompilations=again.compiled + again.cached,
      final_loss=float(parallel.to_host(state.loss)),
      device_peak_bytes=stats.get('peak_bytes_in_use'))
  return result


def time_all(algorithms: list[str], models: list[str], small: bool,
             steps: int, count: int, dtypes: tuple[str, ...] = ('float32',)
             ) -> tuple[dict[str, Any], list[dict]]:
  """Times every (algorithm, model, compute dtype); returns the settings
  and the rows."""
  rows = []
  settings = None
  runs = [(a, m, d) for a in algorithms for m in models for d in dtypes]
  data = {}
  for algorithm, model, dtype in runs:
    config = timing_config(algorithm, model, small, dtype)
    size = max(config.train_sizes)
    hints = preflight.uses_hints(config)
    if (algorithm, hints) not in data:
      data[algorithm, hints] = _generate(config, size, count)
    print(f'timing {model} ({dtype}) on {algorithm} ({steps} steps)...',
          flush=True)
    row = {'algorithm': algorithm, 'model': model, 'compute_dtype': dtype}
    try:
      row.update(time_training(config, data[algorithm, hints], steps))
    except Exception as e:  # pylint: disable=broad-except
      # One model that fails (out of memory, say) leaves the others.
      row['error'] = f'{type(e).__name__}: {e}'[:2000]
      print(f'  failed: {row["error"][:300]}', flush=True)
    rows.append(row)
    settings = settings or {
        'config': 'test' if small else 'dear_paper',
        'hidden_size': config.hidden_size,
        'batch_size': config.batch_size,
        'learning_rate': config.learning_rate,
        'train_size': size, 'batches': count, 'steps': steps,
        'data': f'{count} batches of {config.batch_size} generated graphs '
                f'of {size} nodes (the largest training size) per '
                f'algorithm, reused round robin'}
  return settings, rows


# --- The command. ---

def devices_line(devices: dict[str, Any], jax_version: str | None) -> str:
  """``'devices: 1 x NVIDIA H100 80GB HBM3 (platform gpu); jax 0.10.2'``."""
  kinds = sorted({d['kind'] for d in devices['devices']})
  return (f'devices: {devices["count"]} x {", ".join(kinds)} (platform '
          f'{devices["platform"]}); jax {jax_version}')


def summary(record: dict[str, Any]) -> str:
  """A few lines for a person: devices, tests, step times."""
  lines = [f'{devices_line(record["devices"], record["versions"]["jax"])}, '
           f'mode {record["mode"]} ({record["mode_from"]})']
  tests = record['tests']
  if tests is None:
    lines.append('tests: not run')
  else:
    counts = tests['counts'] or {}
    lines.append(f'tests: {"ok" if tests["ok"] else "FAILED"} '
                 f'({counts.get("passed", 0)} passed, '
                 f'{counts.get("failed", 0)} failed, '
                 f'{counts.get("errors", 0)} errors) in '
                 f'{tests["seconds"]:.0f} s')
  for row in record['timings']:
    name = f'{row["algorithm"]:>15} {row["model"]:>5} {row["compute_dtype"]:>8}'
    if 'error' in row:
      lines.append(f'{name}: ERROR {row["error"][:200]}')
      continue
    lines.append(f'{name}: compile '
                 f'{row["compile_s"]:6.1f} s, {1e3 * row["step_s"]:8.1f} '
                 f'ms/step over {row["steps"]} steps, host '
                 f'{1e3 * row["host_batch_s"]:6.1f} ms/batch')
  return '\n'.join(lines)


def _settings_or_fail(
) -> tuple[list[str], list[str], int | None, int, tuple[str, ...] | None]:
  algorithms = [a for a in _ALGORITHMS.value if a]
  models = [m for m in _MODELS.value if m]
  steps = _STEPS.value
  dtypes = (None if _DTYPES.value is None
            else tuple(d for d in _DTYPES.value if d))
  try:
    check_settings(algorithms, models, SMALL_STEPS if steps is None else steps,
                   _BATCHES.value, FULL_DTYPES if dtypes is None else dtypes)
  except ValueError as e:
    cli.fail(e)
  return algorithms, models, steps, _BATCHES.value, dtypes


def _write(record: dict[str, Any], path: str) -> None:
  try:
    with open(path, 'w') as f:
      json.dump(record, f, indent=2)
  except OSError as e:
    cli.fail(f'cannot write --output={path} ({e.strerror or e}); choose a '
             f'file in a folder you can write to')


def _test_phase(record: dict[str, Any]) -> None:
  tests = [t for t in _TESTS.value if t]
  record['tests'] = None
  if tests:
    print(f'running {len(tests)} numerical tests (pytest)...', flush=True)
    record['tests'] = run_tests(tests, _TEST_TIMEOUT.value)


def _device_phase(record: dict[str, Any]) -> bool:
  """Records the devices; returns whether the check is the small one."""
  record['devices'] = device_info()
  record['versions'] = versions()
  print(devices_line(record['devices'], record['versions']['jax']),
        flush=True)
  small = _SMALL.value
  record['mode_from'] = 'platform' if small is None else '--small flag'
  if small is None:
    small = record['devices']['platform'] == 'cpu'
  record['mode'] = 'small' if small else 'full'
  return small


def _problems(record: dict[str, Any]) -> list[str]:
  """What went wrong, in words (empty: nothing)."""
  problems = []
  if record['tests'] is not None and not record['tests']['ok']:
    problems.append('the numerical tests did not all pass (see "tests")')
  failed = [f'{r["algorithm"]}/{r["model"]}/{r["compute_dtype"]}'
            for r in record['timings'] if 'error' in r]
  if failed:
    problems.append(f'timing failed for {", ".join(failed)} (see '
                    f'"timings")')
  return problems


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  algorithms, models, steps, count, dtypes = _settings_or_fail()
  output = _OUTPUT.value
  record = {'command': ' '.join(sys.argv), 'started': now(), 'phases_s': {},
            'finished': None}
  _write(record, output)  # Refused now, not after the measurements.
  # Only now CLRS and TensorFlow, quietly (see experiments.quiet).
  from experiments import quiet  # noqa: F401  # pylint: disable=import-outside-toplevel
  begin = time.perf_counter()
  _test_phase(record)
  record['phases_s']['tests'] = time.perf_counter() - begin
  _write(record, output)  # Kept if a later phase fails.
  start = time.perf_counter()
  small = _device_phase(record)
  record['phases_s']['devices'] = time.perf_counter() - start
  _write(record, output)
  if steps is None:
    steps = SMALL_STEPS if small else FULL_STEPS
  if dtypes is None:
    dtypes = SMALL_DTYPES if small else FULL_DTYPES
  start, since = time.perf_counter(), provenance.cpu_times()
  record['settings'], record['timings'] = time_all(
      algorithms, models, small, steps, count, dtypes)
  record['phases_s']['timing'] = time.perf_counter() - start
  record['machine_load'] = provenance.machine_load(since)
  record['code'] = provenance.code_version(str(ROOT))
  record['phases_s']['total'] = time.perf_counter() - begin
  record['finished'] = now()
  problems = _problems(record)
  record['ok'] = not problems
  _write(record, output)
  print(summary(record))
  print(f'wrote {output}')
  if problems:
    cli.fail('; '.join(problems) + f' in {output}')


if __name__ == '__main__':
  app.run(main)
