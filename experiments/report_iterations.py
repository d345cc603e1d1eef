"""Solver schedules side by side on one trained cell: test score and
solver iterations per graph, as one markdown table (flag-free; built by
``experiments.rebuild_results`` into ``results/iterations/table.md``).

Records: ``results/iterations/*.json``, each the output of ``python -m
experiments.evaluate --output=...`` of a ``dear`` run, scored with the
solver overrides it records (``solver_overrides``: ``solver``,
``return_best`` and any other). A record without an override of ``solver``
used the run's own solver, which the record does not name: the table says
"run's". The commands that made the committed records are in
``results/iterations/README.md``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from experiments import tables

#: The order of the schedules in the table.
SOLVER_ORDER = ('anderson', 'anderson_growing', 'fixed_point')
#: The overrides that name a schedule; the others are listed as such.
SCHEDULE_KEYS = ('solver', 'return_best')


def load(folder: pathlib.Path) -> list[dict[str, Any]]:
  """The ``dear`` evaluation records in ``folder`` (sorted by file name).

  Raises:
    ValueError: a record that is not an evaluation of a ``dear`` run.
  """
  if not folder.is_dir():
    return []
  records = []
  for path in sorted(folder.glob('*.json')):
    record = json.loads(path.read_text())
    if record.get('model') != 'dear' or 'solver_overrides' not in record:
      raise ValueError(f'{path} is not an experiments.evaluate record of a '
                       f'dear run')
    records.append(record)
  return records


def _schedule(record: dict[str, Any]) -> tuple[str, str, str]:
  """``(solver, return_best, other overrides)`` as the table writes them."""
  overrides = record['solver_overrides']
  solver = overrides.get('solver', "run's")
  best = {True: 'on', False: 'off'}.get(overrides.get('return_best'),
                                         "run's")
  other = ', '.join(f'{k}={v}' for k, v in sorted(overrides.items())
                    if k not in SCHEDULE_KEYS)
  return solver, best, other or '-'


def _order(row: dict[str, Any]) -> tuple:
  solver = row['solver']
  rank = SOLVER_ORDER.index(solver) if solver in SOLVER_ORDER else len(
      SOLVER_ORDER)
  return (row['algorithm'], row['seed'], row['params_step'], rank, solver,
          row['return_best'], row['other'], row['nodes'])


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per record and test size, sorted by run, schedule and size."""
  out = []
  for record in records:
    solver, best, other = _schedule(record)
    for size, score in record['test_scores'].items():
      stats = (record.get('solver') or {}).get(size)
      if stats is None:
        raise ValueError(f'{record["algorithm"]} seed {record["seed"]}: no '
                         f'solver statistics at {size} nodes')
      out.append(dict(
          algorithm=record['algorithm'], seed=int(record['seed']),
          params_step=int(record['params_step']), solver=solver,
          return_best=best, other=other, nodes=int(size),
          score=float(score['score']),
          iterations_mean=float(stats['iterations_mean']),
          iterations_max=int(stats['iterations_max']),
          converged=float(stats['converged_fraction']),
          graphs=int(stats['graphs'])))
  return sorted(out, key=_order)


def markdown(table_rows: list[dict[str, Any]]) -> str:
  """The rows as one markdown table."""
  head = ['algorithm', 'seed', 'params step', 'solver', 'return_best',
          'other overrides', 'nodes', 'graphs', 'score', 'iterations mean',
          'iterations max', 'converged']
  lines = tables.header(head)
  for r in table_rows:
    lines.append(tables.row([
        r['algorithm'], str(r['seed']), f'{r["params_step"]:,}',
        r['solver'], r['return_best'], r['other'], str(r['nodes']),
        str(r['graphs']), f'{r["score"]:.3f}', f'{r["iterations_mean"]:.2f}',
        str(r['iterations_max']), f'{r["converged"]:.2f}']))
  lines += ['', NOTE]
  return tables.text(lines)


#: Said under the table.
NOTE = ('Score: CLRS\'s score on the run\'s test graphs of that size (the '
        'same graphs in every row of a run). Iterations: evaluations of the '
        'map per graph in the solve loop, until its first iterate under the '
        'tolerance or the cap (mean and max over the graphs). Converged: '
        'the fraction of graphs that met the tolerance. Every other setting '
        '(tolerance, cap, evaluation noise) is the run\'s unless listed.')


def build(folder: pathlib.Path) -> str | None:
  """``table.md``'s text for the records in ``folder``, or None if there
  are none."""
  records = load(folder)
  if not records:
    return None
  return markdown(rows(records))
