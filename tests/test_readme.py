"""The README's drop-in example runs as written and gives sane numbers."""

import contextlib
import io
import pathlib
import re

import pytest

from experiments import readme_tables

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'


def python_blocks(text: str) -> list[str]:
  return re.findall(r'```python\n(.*?)```', text, flags=re.S)


# Slow-marked (CI's slow set runs it) to keep the default run under 8
# minutes on 2 cores; it took 40-60 s there.
@pytest.mark.slow
def test_readme_processor_factory_example_runs():
  blocks = python_blocks(README.read_text())
  example = next(b for b in blocks if 'get_processor_factory' in b)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(example, str(README), 'exec'), {'__name__': '__readme__'})
  text = out.getvalue()
  score = float(re.search(r'micro-F1 at 64 nodes: ([0-9.]+)', text).group(1))
  assert 0.0 <= score <= 1.0
  graphs = int(re.search(r"'graphs': (\d+)", text).group(1))
  assert graphs == 8  # one solve per test graph, reported by the stats log


RESULTS = README.parent / 'results'
# The columns of dear_cpu/table.md that results/README.md's table shows.
SHOWN = readme_tables.SHOWN


def test_results_readme_table_is_the_reports_table():
  readme = (RESULTS / 'README.md').read_text()
  shown = readme_tables.table_rows(readme, '| algorithm | model | seeds |')
  report = [[row[i] for i in SHOWN] for row in readme_tables.table_rows(
      (RESULTS / 'dear_cpu' / 'table.md').read_text(), '| algorithm |')]
  assert len(shown) == len(report)
  for mine, theirs in zip(shown, report):
    # A run that did not record its code is '?' in the report; the README
    # may name the commit from the sitting's own record instead.
    assert mine[:-1] == theirs[:-1]
    commits, recorded = mine[-1].split(','), theirs[-1].split(',')
    assert len(commits) == len(recorded), mine[:2]
    assert all(c == t or (t == '?' and re.fullmatch('[0-9a-f]{7}', c))
               for c, t in zip(commits, recorded)), mine[:2]


def test_results_readme_gap_lines_are_the_reports():
  readme = (RESULTS / 'README.md').read_text()
  gaps = (RESULTS / 'dear_cpu' / 'gaps.md').read_text().splitlines()
  shown = [line for line in readme.splitlines()
           if re.match(r'\| \d+ \| \w+ \| (dear|nar)', line)]
  assert shown
  missing = set(shown) - set(gaps)
  assert not missing, sorted(missing)


def test_readme_results_cells_are_the_reports():
  """Every score in the README's results table is a cell of gaps.md for
  that algorithm at 64 nodes (a DEAR, NAR, nar_lt or dear:tol0.01 row)."""
  gaps = (RESULTS / 'dear_cpu' / 'gaps.md').read_text().splitlines()
  rows = readme_tables.table_rows(README.read_text(),
                                  readme_tables.SUMMARY_HEADER)
  assert len(rows) == 10
  checked = 0
  for alg, *cells in rows:
    mine = [line for line in gaps if line.startswith(f'| 64 | {alg} | ')]
    assert mine, f'{alg} has no row in gaps.md'
    for cell in cells:
      if cell == '-':
        continue
      assert any(f'| {cell} |' in line for line in mine), (alg, cell)
      checked += 1
  assert checked >= 20
