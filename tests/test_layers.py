"""The package is a one-way stack: core -> integration -> training ->
measure -> entry.

Each layer may import the layers before it and never one after it; the core
imports neither clrs nor haiku nor TensorFlow (so importing a solver takes
a second, not the five that CLRS's TensorFlow costs).
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'deq_clrs'

# Top-level names (or dotted prefixes) each layer must not import.
CLRS_STACK = ('clrs', 'haiku', 'tensorflow', 'tensorflow_datasets')
FORBIDDEN = {
    'core': CLRS_STACK + ('deq_clrs.integration', 'deq_clrs.training',
                          'deq_clrs.measure', 'experiments', 'launch',
                          'orbax', 'optax'),
    'integration': ('deq_clrs.training', 'deq_clrs.measure', 'experiments',
                    'launch', 'orbax'),
    'training': ('deq_clrs.measure', 'experiments', 'launch'),
    'measure': ('experiments', 'launch'),
    'experiments': ('launch',),
}


def _layer(path: pathlib.Path) -> str | None:
  rel = path.relative_to(ROOT)
  if rel.parts[0] == 'deq_clrs':
    if len(rel.parts) == 2:
      return 'core'
    return rel.parts[1]            # integration / training / measure
  if rel.parts[0] == 'experiments':
    return 'experiments'
  return None


def _modules() -> list[pathlib.Path]:
  """Library modules (not tests) of every layer."""
  paths = []
  for folder in ('deq_clrs', 'experiments'):
    for path in sorted((ROOT / folder).rglob('*.py')):
      if not path.name.endswith('_test.py'):
        paths.append(path)
  return paths


def _imports(source: str) -> list[str]:
  """Every module name imported anywhere in a file (lazy imports too)."""
  names = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.append(node.module)
      names += [f'{node.module}.{alias.name}' for alias in node.names]
  return names


def _violations(path: pathlib.Path, source: str | None = None) -> list[str]:
  banned = FORBIDDEN.get(_layer(path), ())
  source = path.read_text() if source is None else source
  return [name for name in _imports(source)
          if any(name == b or name.startswith(b + '.') for b in banned)]


def test_the_layers_are_the_folders():
  layers = {_layer(path) for path in _modules()}
  assert layers == {'core', 'integration', 'training', 'measure',
                    'experiments'}
  core = {p.name for p in _modules() if _layer(p) == 'core'}
  assert {'anderson.py', 'solvers.py', 'gradients.py', 'cells.py', 'deq.py',
          'stats.py', 'oracles.py'} <= core


@pytest.mark.parametrize('path', _modules(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_later_layer(path):
  assert _violations(path) == [], (
      f'{path.relative_to(ROOT)} is in the {_layer(path)} layer and must not '
      f'import {FORBIDDEN[_layer(path)]}')


def test_the_checker_sees_a_violation():
  """The scan above is not vacuous: lazy and from-imports are caught."""
  core = PACKAGE / 'solvers.py'
  assert _violations(core, 'def f():\n  import clrs.models\n') == [
      'clrs.models']
  assert _violations(core, 'from deq_clrs import training\n') == [
      'deq_clrs.training']
  integration = PACKAGE / 'integration' / 'processors.py'
  assert _violations(integration, 'import clrs\nimport haiku\n') == []
  training = PACKAGE / 'training' / 'loop.py'
  assert _violations(training, 'from deq_clrs.measure import speed\n') == [
      'deq_clrs.measure', 'deq_clrs.measure.speed']
  measure = PACKAGE / 'measure' / 'speed.py'
  assert _violations(measure, 'from deq_clrs.training import data\n') == []


def _assert_runs(code: str) -> None:
  """Runs ``code`` in a fresh interpreter (nothing imported yet)."""
  run = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]


def test_importing_the_core_never_imports_clrs():
  code = ('import sys\n'
          'import deq_clrs, deq_clrs.solvers, deq_clrs.cells, deq_clrs.deq\n'
          'import deq_clrs.anderson, deq_clrs.gradients\n'
          'import deq_clrs.stats, deq_clrs.oracles\n'
          f'loaded = sorted(m for m in sys.modules if m.split(".")[0] in '
          f'{CLRS_STACK!r})\n'
          'assert not loaded, loaded\n'
          # The drop-in names stay reachable from the package root.
          'assert callable(deq_clrs.get_processor_factory)\n'
          'assert "clrs" in sys.modules\n')
  _assert_runs(code)


def test_the_report_and_light_training_modules_never_import_clrs():
  """experiments.report reads results files without CLRS's start-up."""
  code = ('import sys\n'
          'import experiments.report, deq_clrs.training.run_config\n'
          'import deq_clrs.training.errors\n'
          f'loaded = sorted(m for m in sys.modules if m.split(".")[0] in '
          f'{CLRS_STACK!r})\n'
          'assert not loaded, loaded\n'
          # The training names stay reachable from the package.
          'import deq_clrs.training as t\n'
          'assert t.UserError is deq_clrs.training.errors.UserError\n'
          'assert callable(t.train_and_evaluate)\n'
          'assert "clrs" in sys.modules\n')
  _assert_runs(code)
