r"""Copies the report's tables into the READMEs that quote them.

``experiments.report`` writes ``results/dear_cpu/table.md`` and
``gaps.md``; three tables quote them and must equal them (the tests in
``tests/test_readme.py`` check so):

- ``results/README.md``'s table: the columns ``SHOWN`` of ``table.md``;
- ``results/README.md``'s gap lines: the 64-node lines of ``gaps.md``'s
  table of every row against NAR, under that table's header;
- ``README.md``'s *Results*: per algorithm, the 64-node scores of
  DEAR, NAR, NAR with learned termination and DEAR at tolerance 0.01, as
  ``gaps.md`` writes them.

Run after the report, from the repository root::

  PYTHONPATH=. python -m experiments.readme_tables
  PYTHONPATH=. python -m experiments.readme_tables --check  # exit 1 if stale

Only the table lines change; the prose around them is left to the author.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

from absl import app
from absl import flags

from experiments import tables

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The columns of dear_cpu/table.md that results/README.md's table shows:
# algorithm, model, seeds, val, test (64), test (128), solver its (64),
# train s, code.
SHOWN = (0, 1, 2, 3, 4, 5, 8, 12, 14)
RESULTS_HEADER = '| algorithm | model | seeds |'
GAPS_HEADER = '| test size | algorithm | row |'
SUMMARY_HEADER = '| algorithm | DEAR | NAR |'
# The summary's columns after the algorithm: the gaps.md row each quotes.
SUMMARY_ROWS = ('dear', 'nar', 'nar_lt', 'dear:tol0.01')

_CHECK = flags.DEFINE_bool(
    'check', False, 'Change nothing; exit 1 if a README table is stale.')
_ROOT = flags.DEFINE_string(
    'root', str(ROOT), 'Repository root holding README.md and results/.')


def split_row(line: str) -> list[str]:
  """The cells, stripped, of one markdown table line."""
  return [c.strip() for c in line.strip().strip('|').split('|')]


def table_span(lines: Sequence[str], header: str) -> tuple[int, int]:
  """[start, end) of the body lines of the first table whose header line
  starts with ``header``; ValueError naming the header if there is none."""
  for i, line in enumerate(lines):
    if line.startswith(header):
      end = i + 2
      while end < len(lines) and lines[end].startswith('|'):
        end += 1
      return i + 2, end
  raise ValueError(f'no table with header {header!r}')


def table_rows(text: str, header: str) -> list[list[str]]:
  """The body rows (cells stripped) of the table whose header starts with
  ``header``."""
  lines = text.splitlines()
  start, end = table_span(lines, header)
  return [split_row(line) for line in lines[start:end]]


def results_table(table_md: str, old: Sequence[Sequence[str]]) -> list[str]:
  """results/README.md's table lines from table.md. A run that did not
  record its commit is '?' in the report; where the README already names a
  commit for that cell (from the sitting's own record), it is kept, also
  when later runs add commits to the cell: the README's commits that the
  report does not list fill its '?'s, in order, when there are as many."""
  known = {tuple(row[:2]): row[-1].split(',') for row in old}
  lines = []
  for row in table_rows(table_md, '| algorithm |'):
    cells = [row[i] for i in SHOWN]
    recorded = cells[-1].split(',')
    named = [c for c in known.get(tuple(cells[:2]), [])
             if c != '?' and c not in recorded]
    if len(named) == recorded.count('?'):
      fill = iter(named)
      cells[-1] = ','.join(next(fill) if t == '?' else t for t in recorded)
    lines.append(tables.row(cells))
  return lines


def gap_lines(gaps_md: str, size: int = 64) -> list[str]:
  """The lines for test size ``size`` of gaps.md's table of every row
  against NAR (the first whose header starts with ``GAPS_HEADER``), in its
  order."""
  lines = gaps_md.splitlines()
  start, end = table_span(lines, GAPS_HEADER)
  return [line for line in lines[start:end]
          if line.startswith(f'| {size} | ')]


def gap_header(gaps_md: str) -> list[str]:
  """The header line and rule of that table of gaps.md."""
  lines = gaps_md.splitlines()
  start, _ = table_span(lines, GAPS_HEADER)
  return lines[start - 2:start]


def summary_table(gaps_md: str, algorithms: Sequence[str]) -> list[str]:
  """README.md's *Results* lines: for each algorithm (in the given
  order) the 64-node score of each of ``SUMMARY_ROWS``, '-' where gaps.md
  has none. NAR's score is the `nar score` column of any of the
  algorithm's lines; the others are the `row score` of their own line."""
  rows = [split_row(line) for line in gap_lines(gaps_md)]
  lines = []
  for alg in algorithms:
    mine = [r for r in rows if r[1] == alg]
    if not mine:
      raise ValueError(f'gaps.md has no 64-node line for {alg}')
    cells = [alg]
    for name in SUMMARY_ROWS:
      if name == 'nar':
        cells.append(mine[0][4])
      else:
        cells.append(next((r[3] for r in mine if r[2] == name), '-'))
    lines.append(tables.row(cells))
  return lines


def _replace(lines: list[str], header: str, body: list[str],
             head: Sequence[str] = ()) -> list[str]:
  """``lines`` with the body of the table under ``header`` (and, given
  ``head``, its header line and rule) replaced; unchanged where ``lines``
  have no such table (a README that does not quote it)."""
  try:
    start, end = table_span(lines, header)
  except ValueError:
    return lines
  if head:
    return lines[:start - 2] + list(head) + body + lines[end:]
  return lines[:start] + body + lines[end:]


def synced_texts(root: pathlib.Path, table_md: str, gaps_md: str
                 ) -> dict[pathlib.Path, str]:
  """The new text of each README (under ``root``) whose quoted tables
  differ from ``table_md`` and ``gaps_md``; a README without one of the
  tables is left as it is there."""
  changed = {}
  path = root / 'results' / 'README.md'
  text = path.read_text()
  lines = text.splitlines()
  try:
    old = table_rows(text, RESULTS_HEADER)
  except ValueError:
    old = None  # The README quotes no such table.
  if old is not None:
    lines = _replace(lines, RESULTS_HEADER, results_table(table_md, old))
  lines = _replace(lines, GAPS_HEADER, gap_lines(gaps_md),
                   gap_header(gaps_md))
  new = '\n'.join(lines) + '\n'
  if new != text:
    changed[path] = new

  path = root / 'README.md'
  text = path.read_text()
  try:
    algorithms = [row[0] for row in table_rows(text, SUMMARY_HEADER)]
  except ValueError:
    algorithms = []
  if algorithms:
    lines = _replace(text.splitlines(), SUMMARY_HEADER,
                     summary_table(gaps_md, algorithms))
    new = '\n'.join(lines) + '\n'
    if new != text:
      changed[path] = new
  return changed


def synced(root: pathlib.Path) -> dict[pathlib.Path, str]:
  """The new text of each README whose tables differ from the committed
  report's (``results/dear_cpu/table.md`` and ``gaps.md``)."""
  results = root / 'results' / 'dear_cpu'
  return synced_texts(root, (results / 'table.md').read_text(),
                      (results / 'gaps.md').read_text())


def main(argv: Sequence[str]) -> None:
  del argv
  changed = synced(pathlib.Path(_ROOT.value))
  for path, text in changed.items():
    if _CHECK.value:
      print(f'stale: {path}')
    else:
      path.write_text(text)
      print(f'updated: {path}')
  if _CHECK.value and changed:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
