"""The documentation stays short, linked and true to the code and results.

- README.md is a front door: at most 220 lines.
- Every relative link in the READMEs and docs/*.md names an existing file.
- docs/options.md's options table is the processor factory's options with
  their defaults (read from the config dataclasses), no more and no less.
- Every decimal number in README.md and results/README.md is a number of a
  generated results file or a documented default, so prose cannot quote a
  figure that no table backs.
- docs/layout.md names every module of the package, its entry points and
  launchers.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'
RESULTS = ROOT / 'results'
DOCS = sorted((ROOT / 'docs').glob('*.md'))
LINKED = [README, RESULTS / 'README.md', ROOT / 'launch' / 'README.md',
          ROOT / 'experiments' / 'README.md', *DOCS]

# [text](target) and ![alt](target); the target ends at a space or ')'.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
# A decimal number that is not part of a longer dotted one (a version).
DECIMAL = re.compile(r'(?<![\d.])\d+\.\d+(?![\d.]*\d)')


def test_readme_is_a_front_door():
  lines = README.read_text().splitlines()
  assert len(lines) <= 220, f'README.md has {len(lines)} lines'


def test_results_readme_is_short():
  lines = (RESULTS / 'README.md').read_text().splitlines()
  assert len(lines) <= 275, f'results/README.md has {len(lines)} lines'


def test_docs_exist():
  names = {p.name for p in DOCS}
  assert {'fidelity.md', 'options.md', 'performance.md',
          'troubleshooting.md', 'results_methodology.md'} <= names


def _modules() -> list[pathlib.Path]:
  """Every non-test module of deq_clrs, experiments and launch (configs
  and sweep files are named as lists there, so they count too)."""
  out = []
  for package in ('deq_clrs', 'experiments', 'launch'):
    for path in (ROOT / package).rglob('*.py'):
      rel = path.relative_to(ROOT)
      if (path.name == '__init__.py' or path.name.endswith('_test.py')
          or rel.parts[:2] == ('experiments', 'reference')):
        continue
      out.append(rel)
  return sorted(out)


def test_layout_names_every_module():
  text = (ROOT / 'docs' / 'layout.md').read_text()
  missing = [str(rel) for rel in _modules()
             if not re.search(rf'`{re.escape(rel.stem)}(\.py)?`', text)]
  assert not missing, f'docs/layout.md does not name: {missing}'


def test_layout_check_sees_a_new_module():
  assert pathlib.Path('deq_clrs/solvers.py') in _modules()
  assert not any(p.name.endswith('_test.py') for p in _modules())


def _without_code_blocks(text: str) -> str:
  return re.sub(r'```.*?```', '', text, flags=re.S)


@pytest.mark.parametrize('path', LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path):
  text = _without_code_blocks(path.read_text())
  broken = []
  for target in LINK.findall(text):
    if re.match(r'[a-z][a-z0-9+.-]*:', target) or target.startswith('#'):
      continue  # a URL or an anchor in the same file
    file = target.split('#')[0]
    if not (path.parent / file).exists():
      broken.append(target)
  assert not broken, f'{path.relative_to(ROOT)}: {broken}'


def test_link_pattern():
  assert LINK.findall('[a](docs/x.md) ![b](r/p.png) [c](http://e.org)') == [
      'docs/x.md', 'r/p.png', 'http://e.org']


def _options_table() -> dict[str, str]:
  """docs/options.md's options table: option name -> default as written."""
  text = (ROOT / 'docs' / 'options.md').read_text()
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines)
               if line.startswith('| option | default |'))
  table = {}
  for line in lines[start + 2:]:
    if not line.startswith('|'):
      break
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    names = [n.strip().strip('`') for n in cells[0].split(',')]
    # "off (reference)" -> "off"; defaults are comma-separated like names.
    defaults = [d.strip().strip('`')
                for d in re.sub(r'\s*\([^)]*\)', '', cells[1]).split(',')]
    if len(defaults) == 1:
      defaults *= len(names)
    assert len(defaults) == len(names), line
    for name, default in zip(names, defaults):
      assert name not in table, f'{name} is in the table twice'
      table[name] = default
  return table


def _parse_default(text: str):
  words = {'on': True, 'off': False, 'hidden': None}
  if text in words:
    return words[text]
  try:
    return float(text)
  except ValueError:
    return text


def test_options_table_is_the_factorys_options():
  from deq_clrs.integration import processors
  cell, deq = processors.option_defaults()
  options = {**cell, **deq}
  table = _options_table()
  assert sorted(table) == sorted(options), (
      f'in the table only: {sorted(set(table) - set(options))}; '
      f'options missing from it: {sorted(set(options) - set(table))}')
  for name, written in table.items():
    stated, actual = _parse_default(written), options[name]
    if isinstance(actual, bool) or actual is None:
      assert stated is actual, (name, written, actual)
    elif isinstance(actual, (int, float)):
      assert stated == pytest.approx(actual, rel=0, abs=0), (
          name, written, actual)
    else:
      assert stated == actual, (name, written, actual)


def _generated_numbers() -> set[str]:
  """The decimal numbers of the files the report commands write."""
  numbers = set()
  for path in RESULTS.rglob('*.md'):
    if path.name != 'README.md':
      numbers.update(DECIMAL.findall(path.read_text()))
  return numbers


def _documented_defaults() -> set[str]:
  """Decimal defaults of the processor options and the experiment configs
  (as written in the docs: 0.1, 1.0, 0.001 ...)."""
  from deq_clrs.integration import processors
  from experiments.configs import dear_cpu
  from experiments.configs import dear_paper
  from experiments.configs import default
  values = []
  for group in processors.option_defaults():
    values.extend(group.values())

  def walk(node):
    if hasattr(node, 'items'):
      for _, value in node.items():
        walk(value)
    elif isinstance(node, (list, tuple)):
      for value in node:
        walk(value)
    else:
      values.append(node)

  for module in (default, dear_cpu, dear_paper):
    walk(module.get_config())
  out = set()
  for value in values:
    if isinstance(value, float) and not isinstance(value, bool):
      out.update({f'{value:f}'.rstrip('0'), repr(value)})
      out.update(DECIMAL.findall(f'{value:f}'.rstrip('0') + '0'))
  return out


@pytest.mark.parametrize('name', ['README.md', 'results/README.md'])
def test_every_decimal_is_generated_or_a_default(name):
  text = (ROOT / name).read_text()
  # A version ("Python 3.10") is not a result.
  text = re.sub(r'Python \d+\.\d+', 'Python', text)
  allowed = _generated_numbers() | _documented_defaults()
  stray = sorted(set(DECIMAL.findall(text)) - allowed)
  assert not stray, f'{name} quotes numbers no generated file holds: {stray}'


def test_decimal_pattern():
  assert DECIMAL.findall('0.1 and 0.953, dm-clrs==2.0.3, 8..16, tol0.01') == [
      '0.1', '0.953', '0.01']
