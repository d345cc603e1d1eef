"""Config files of the entry points, checked before ml_collections loads
them, so that a bad one ends in one line that says what is wrong.

* :func:`given_file`: the ``--config=<file>[:<argument>]`` of a command
  line;
* :func:`config_file_problem`: why a file cannot be a config file (read and
  parsed, not run);
* :func:`load_config_file`: its ``get_config()``;
* :func:`field_problem` and :func:`config_field_error`: an unknown
  ``--config.<field>`` named with the closest valid name and the valid names
  at its level.

Flag-free and without CLRS: :mod:`experiments.cli` builds the flag parser of
``experiments.train`` on these.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
from collections.abc import Sequence

import ml_collections


def given_file(argv: Sequence[str], default_file: str) -> tuple[str, str]:
  """The ``--config`` file of a command line and its ``:argument``."""
  path = default_file
  for i, arg in enumerate(argv):
    if arg == '--':
      break
    match = re.match(r'^--?config=(.*)$', arg)
    if match:
      path = match.group(1)
    elif arg in ('--config', '-config') and i + 1 < len(argv):
      path = argv[i + 1]  # absl also reads --config <file>.
  path, _, argument = path.partition(':')
  return path, argument


def config_file_problem(path: str, argument: str = '') -> str | None:
  """Why ``--config=<path>[:<argument>]`` cannot be a config file (None: it
  can): a missing or unreadable file, a syntax error, no ``get_config``, or
  a ``get_config`` that takes no argument while one is given (or needs one
  while none is). Read and parsed, not run, so that the error is one line
  before ml_collections loads it (which otherwise ends in a traceback, an
  absl FATAL message, or an unknown-field message for a file without
  ``get_config``)."""
  try:
    with open(path, encoding='utf-8') as f:
      source = f.read()
  except OSError as e:
    return f'cannot read it ({e.strerror or e})'
  except UnicodeDecodeError:
    return 'it is not a text file'
  try:
    tree = ast.parse(source, filename=path)
  except SyntaxError as e:
    return f'syntax error at line {e.lineno}: {e.msg}'
  binding = _last_binding(tree, 'get_config')
  if binding is None:
    return ('it defines no get_config() (an ml_collections config file '
            'returns its ConfigDict from get_config)')
  if not isinstance(binding, ast.FunctionDef):
    return None  # an import or an assignment: its signature is unknown
  args = binding.args
  positional = [*args.posonlyargs, *args.args]
  required = len(positional) - len(args.defaults)
  if argument and not positional and not args.vararg:
    return (f'its get_config() takes no argument, but the flag gives it '
            f'{argument!r} (drop the ":{argument}")')
  if not argument and required > 0:
    return (f'its get_config() needs an argument '
            f'({positional[0].arg}): --config={path}:<value>')
  return None


def _last_binding(tree: ast.Module, name: str) -> ast.stmt | None:
  """The last top-level def, assignment or import of a module that binds
  ``name`` (the one a caller of ``module.<name>`` gets), or None."""
  binding = None
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      bound = {node.name}
    elif isinstance(node, ast.Assign):
      bound = {t.id for t in node.targets if isinstance(t, ast.Name)}
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      bound = {(a.asname or a.name).split('.')[0] for a in node.names}
    else:
      continue
    if name in bound:
      binding = node
  return binding


def load_config_file(path: str, argument: str = ''
                     ) -> ml_collections.ConfigDict:
  """``get_config()`` of an ml_collections config file."""
  spec = importlib.util.spec_from_file_location('_checked_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(argument) if argument else module.get_config()


def field_problem(config: ml_collections.ConfigDict,
                  path: str) -> str | None:
  """Why ``--config.<path>`` names no field of ``config`` (None: it does).

  The message names the first unknown part, the closest valid name and the
  valid names at that level (sub-configs marked ``.*``).
  """
  node = config
  parts = path.split('.')
  for i, part in enumerate(parts):
    if isinstance(node, ml_collections.ConfigDict) and part in node:
      node = node[part]
      continue
    parent = '.'.join(['config', *parts[:i]])
    if not isinstance(node, ml_collections.ConfigDict):
      return (f'unknown config field --config.{path}: {parent} is a value, '
              f'not a group of fields')
    names = sorted(node.keys())
    close = difflib.get_close_matches(part, names, n=1)
    hint = f' (did you mean --{parent}.{close[0]}?)' if close else ''
    valid = ', '.join(
        f'{k}.*' if isinstance(node[k], ml_collections.ConfigDict) else k
        for k in names)
    return (f'unknown config field --config.{path}{hint}; the fields of '
            f'{parent} are: {valid}')
  return None


def config_field_error(argv: Sequence[str], default_file: str) -> str:
  """The message for ``--config.<field>`` overrides the config lacks."""
  path, argument = given_file(argv, default_file)
  config = load_config_file(path, argument)
  problems = []
  for arg in argv:
    match = re.match(r'^--?(?:no)?config\.([^=]+)', arg)
    if match:
      problem = field_problem(config, match.group(1))
      if problem:
        problems.append(problem)
  return '; '.join(problems) or 'a --config.<field> override failed'
