"""The project uses only CLRS's public API.

No module of deq_clrs/, experiments/ or launch/ (tests excepted) may import
``clrs._src`` or reach into a CLRS object's private attributes: the names
``self._x`` and methods ``_x`` that CLRS's own classes define (read from
the installed CLRS source, e.g. ``_create_net_fns``, ``_device_params``,
``_feedback``, ``_spec``), accessed on anything but ``self``, or on ``self``
inside a class derived from a CLRS class.
"""

import ast
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ('deq_clrs', 'experiments', 'launch')


def _clrs_private_names() -> frozenset[str]:
  """Private attributes and methods of CLRS's classes (``clrs/_src``)."""
  spec = importlib.util.find_spec('clrs')
  src = pathlib.Path(spec.origin).parent / '_src'
  names = set()
  for path in src.rglob('*.py'):
    text = path.read_text()
    names |= set(re.findall(r'self\.(_[A-Za-z]\w*)', text))
    names |= set(re.findall(r'^\s+def (_[A-Za-z]\w*)\(self', text, re.M))
  return frozenset(n for n in names if not n.startswith('__'))


PRIVATE = _clrs_private_names()


def _modules() -> list[pathlib.Path]:
  paths = []
  for folder in FOLDERS:
    for path in sorted((ROOT / folder).rglob('*.py')):
      if not (path.name.endswith('_test.py')
              or path.name.startswith('test_')):
        paths.append(path)
  return paths


def _dotted(node: ast.AST) -> str | None:
  """``a.b.c`` for a chain of names and attributes, else None."""
  parts = []
  while isinstance(node, ast.Attribute):
    parts.append(node.attr)
    node = node.value
  if isinstance(node, ast.Name):
    parts.append(node.id)
    return '.'.join(reversed(parts))
  return None


def _clrs_names(tree: ast.AST) -> set[str]:
  """Local names bound to clrs or to something imported from it."""
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split('.')[0] == 'clrs':
          names.add((alias.asname or alias.name).split('.')[0])
    elif isinstance(node, ast.ImportFrom) and node.module and (
        node.module.split('.')[0] == 'clrs'):
      names |= {alias.asname or alias.name for alias in node.names}
  return names


def private_uses(source: str) -> list[str]:
  """``line: what`` for every private CLRS use in a module's source."""
  tree = ast.parse(source)
  clrs_names = _clrs_names(tree)
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [f'{node.lineno}: import {a.name}' for a in node.names
                if a.name.startswith('clrs._src')]
    elif isinstance(node, ast.ImportFrom) and node.module and (
        node.module.startswith('clrs._src') or (
            node.module == 'clrs'
            and any(a.name == '_src' for a in node.names))):
      found.append(f'{node.lineno}: from {node.module} import ...')
    elif isinstance(node, ast.Attribute):
      dotted = _dotted(node)
      if dotted and (dotted == 'clrs._src' or dotted.startswith('clrs._src.')):
        found.append(f'{node.lineno}: {dotted}')
  # Private attributes: on anything but self, or on self in a CLRS subclass.
  for cls_or_mod in [tree] + [n for n in ast.walk(tree)
                              if isinstance(n, ast.ClassDef)]:
    clrs_subclass = isinstance(cls_or_mod, ast.ClassDef) and any(
        (_dotted(base) or '').split('.')[0] in clrs_names
        for base in cls_or_mod.bases)
    for node in ast.walk(cls_or_mod):
      if not (isinstance(node, ast.Attribute) and node.attr in PRIVATE):
        continue
      on_self = isinstance(node.value, ast.Name) and node.value.id in (
          'self', 'cls')
      if (not on_self and cls_or_mod is tree) or (on_self and clrs_subclass):
        found.append(f'{node.lineno}: .{node.attr}')
  return sorted(set(found))


def test_clrs_private_names_are_known():
  assert {'_create_net_fns', '_device_params', '_device_opt_state',
          '_feedback', '_predict', '_compute_grad', '_spec',
          '_freeze_processor'} <= PRIVATE


@pytest.mark.parametrize('path', _modules(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_private_clrs(path):
  uses = private_uses(path.read_text())
  assert uses == [], (f'{path.relative_to(ROOT)} uses private CLRS API '
                      f'(use the public one): {uses}')


@pytest.mark.parametrize('source,what', [
    ('from clrs._src import baselines\n', 'from clrs._src import ...'),
    ('import clrs._src.losses\n', 'import clrs._src.losses'),
    ('from clrs import _src\n', 'from clrs import ...'),
    ('import clrs\nf = clrs._src.losses.output_loss\n', 'clrs._src.losses'),
    ('def f(model):\n  return model._device_params\n', '._device_params'),
    ('def f(model):\n  model._create_net_fns(1)\n', '._create_net_fns'),
    ('import clrs\nclass M(clrs.models.BaselineModel):\n'
     '  def g(self):\n    return self._spec\n', '._spec'),
    ('from clrs import models\nclass M(models.BaselineModel):\n'
     '  def _feedback(self):\n    return self._predict()\n', '._predict'),
])
def test_the_checker_sees_private_use(source, what):
  uses = private_uses(source)
  assert any(what in use for use in uses), uses


def test_the_checker_leaves_own_private_names_alone():
  source = ('class Own:\n  def __init__(self):\n    self._spec = 1\n'
            '  def _predict(self):\n    return self._spec\n')
  assert private_uses(source) == []
