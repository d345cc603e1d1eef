"""Modules and functions stay small enough to read in one sitting, and a
module's file name says which module it is.

Library and entry-point code (``deq_clrs/``, ``experiments/``,
``launch/``; tests excluded) holds no module over 500 lines and no
function over 60, counted in lines from ``def`` (or its first decorator)
to its last line, docstring included. ruff's PLR0915 counts statements, so
a function of long calls and docstrings passes it at twice this length.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ('deq_clrs', 'experiments', 'launch')
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _sources(tests: bool = False) -> list[pathlib.Path]:
  return sorted(p for folder in FOLDERS
                for p in (ROOT / folder).rglob('*.py')
                if tests or not p.name.endswith('_test.py'))


def shared_names(paths: list[pathlib.Path]) -> dict[str, list[str]]:
  """File names held by more than one of ``paths`` (relative to ROOT),
  with their folders. ``__init__.py`` is exempt, and so is a sweep named
  after the config it runs (``launch/sweeps/X.py`` beside
  ``experiments/configs/X.py``: ``--sweep=X`` and ``--config=.../X.py``
  are one experiment set)."""
  folders: dict[str, list[str]] = {}
  for p in paths:
    rel = p.relative_to(ROOT)
    if p.name == '__init__.py' or (
        rel.parent == pathlib.Path('launch/sweeps')
        and (ROOT / 'experiments/configs' / p.name).exists()):
      continue
    folders.setdefault(p.name, []).append(str(rel.parent))
  return {name: sorted(where) for name, where in folders.items()
          if len(where) > 1}


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES
                   ) -> list[tuple[str, int]]:
  """``(qualified name, lines)`` of every function in ``source`` longer
  than ``limit`` lines (methods and nested functions included)."""
  found = []

  def visit(node: ast.AST, prefix: str) -> None:
    for child in ast.iter_child_nodes(node):
      name = prefix
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                            ast.ClassDef)):
        name = f'{prefix}{child.name}'
        if not isinstance(child, ast.ClassDef):
          first = min([child.lineno]
                      + [d.lineno for d in child.decorator_list])
          lines = child.end_lineno - first + 1
          if lines > limit:
            found.append((name, lines))
        name += '.'
      visit(child, name)

  visit(ast.parse(source), '')
  return found


def test_no_module_is_over_500_lines():
  long = {str(p.relative_to(ROOT)): n for p in _sources()
          if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
  assert not long, f'split these modules (lines): {long}'


def test_no_function_is_over_60_lines():
  long = {f'{p.relative_to(ROOT)}:{name}': n for p in _sources()
          for name, n in long_functions(p.read_text())}
  assert not long, f'split these functions (lines): {long}'


def test_the_check_counts_lines_of_methods_and_decorators():
  body = ''.join(f'  x{i} = {i}\n' for i in range(58))
  method = ''.join('  ' + line + '\n' for line in body.splitlines())
  source = (f'@staticmethod\ndef ok():\n{body}\n'
            f'class A:\n  @property\n  def long(self):\n{method}'
            f'    return 1\n')
  # ok: decorator, def and 58 lines: 60. A.long: 1 + 1 + 58 + 1: 61.
  assert long_functions(source) == [('A.long', 61)]


def test_file_names_are_unique_across_packages():
  shared = shared_names(_sources(tests=True))
  assert not shared, f'rename one of each (name: folders): {shared}'


def test_the_name_check_sees_a_shared_name():
  paths = [ROOT / 'deq_clrs/stats.py', ROOT / 'experiments/stats.py',
           ROOT / 'deq_clrs/__init__.py', ROOT / 'launch/__init__.py',
           ROOT / 'launch/sweeps/dear_cpu.py',
           ROOT / 'experiments/configs/dear_cpu.py']
  assert shared_names(paths) == {'stats.py': ['deq_clrs', 'experiments']}


MAX_SCRIPT_COMMANDS = 2


def script_commands(path: pathlib.Path) -> list[str]:
  """The lines of a shell script that do something: neither blank, nor a
  comment, nor the shebang."""
  return [line for line in path.read_text().splitlines()
          if line.strip() and not line.lstrip().startswith('#')]


def test_results_scripts_only_call_entry_points():
  """Shell scripts under results/ keep no logic: a line or two that call a
  Python entry point or a sweep (the logic is tested Python)."""
  long = {str(p.relative_to(ROOT)): len(script_commands(p))
          for p in sorted((ROOT / 'results').rglob('*.sh'))
          if len(script_commands(p)) > MAX_SCRIPT_COMMANDS}
  assert not long, f'move the logic of these scripts into Python: {long}'


def test_the_script_check_counts_commands(tmp_path):
  script = tmp_path / 'x.sh'
  script.write_text('#!/usr/bin/env bash\n# usage\n\ncd here\n  exec run\n')
  assert script_commands(script) == ['cd here', '  exec run']
