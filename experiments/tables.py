"""The markdown tables of the report modules, written one way.

Every generated table under ``results/`` (``experiments.report``'s
``table.md`` and ``gaps.md``, ``ablation_report``, ``budget_report``,
``report_parity``, ``report_iterations``) and the README tables that quote
them (``readme_tables``) are built from these helpers, so that their layout
(``| a | b |`` lines under a ``|---|---|`` rule) is written once. The cell
formats the report's tables share (a mean ± std over seeds, a list of
seeds) are here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence

import numpy as np


def row(cells: Sequence[str]) -> str:
  """One table line: ``| a | b |``."""
  return '| ' + ' | '.join(cells) + ' |'


def header(head: Sequence[str]) -> list[str]:
  """A table's first two lines: the column names and the ``|---|`` rule."""
  return [row(head), '|' + '---|' * len(head)]


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
  """The lines of a whole table: :func:`header` and one line per row."""
  return header(head) + [row(cells) for cells in rows]


def text(lines: Sequence[str]) -> str:
  """The lines of a generated file as its text (one newline at the end)."""
  return '\n'.join(lines) + '\n'


def mean_std(values: Sequence[float], digits: int = 3) -> str:
  """``-`` for none, the value for one, else ``mean ± std`` (numpy's
  *population* std, ddof=0)."""
  if not values:
    return '-'
  if len(values) == 1:
    return f'{values[0]:.{digits}f}'
  return f'{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}'


def seeds_text(seeds: list[int]) -> str:
  """``seed 0``, ``seeds 0-4`` (three or more in a row) or ``seeds 0, 2``."""
  if len(seeds) == 1:
    return f'seed {seeds[0]}'
  if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
    return f'seeds {seeds[0]}-{seeds[-1]}'
  return 'seeds ' + ', '.join(str(s) for s in seeds)
