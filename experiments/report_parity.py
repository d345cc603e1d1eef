"""Our DEAR and NAR beside the authors' implementation on the same test
graphs, as one markdown table (flag-free; built by
``experiments.rebuild_results`` into ``results/parity/table.md``).

Records, one JSON file per run and scored set:

* ``results/parity/reference/*.json``: the authors' code, trained and tested
  by hand beside this project (their repository is not part of it); each
  file holds ``implementation: "reference"``, ``algorithm``, ``model``,
  ``seed``, ``train_steps``, ``test_size`` and ``test_score`` (their test
  set, their metric), and where known ``iterations_mean``/``_max`` and
  ``test_metrics`` (their logged test losses).
* ``results/parity/ours/*.json``: ``python -m experiments.evaluate
  --eval_sets=reference --output=...`` of our runs, i.e. scored on the same
  graphs (:mod:`deq_clrs.training.reference_data`); their ``tag`` names the
  variant (``''``: the table's settings) and ``pointer_loss`` says whether
  their ``test_loss`` is the reference's quantity (``'edges'``; records
  without it are CLRS's all-node loss).

Each row is one algorithm, model and variant of ours against the reference
at the same model, with Welch's 95% interval of ours minus theirs over
seeds (none where a side has one seed).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from experiments import intervals
from experiments import tables

SIZE = '64'


def _load(folder: pathlib.Path, key: Callable[[dict[str, Any]], tuple]
          ) -> list[dict[str, Any]]:
  """The records in ``folder``; two with the same ``key`` (one seed of one
  row) are refused, naming both files: a seed pooled twice (a record
  copied, or a run whose config lacks its variant's tag) would narrow the
  interval."""
  if not folder.is_dir():
    return []
  runs, seen = [], {}
  for path in sorted(folder.glob('*.json')):
    run = json.loads(path.read_text())
    k = key(run)
    if k in seen:
      raise ValueError(f'{seen[k].name} and {path.name} in {folder} are '
                       f'the same seed of one row {k}: keep one')
    seen[k] = path
    runs.append(run)
  return runs


def reference_runs(root: pathlib.Path) -> list[dict[str, Any]]:
  """The reference's run records under ``root`` (``results/parity``)."""
  runs = _load(root / 'reference', lambda r: (
      r.get('algorithm'), r.get('model'), r.get('test_size'), r.get('seed')))
  for run in runs:
    if run.get('implementation') != 'reference':
      raise ValueError(f'{root / "reference"} holds a record that is not '
                       f'the reference\'s: {sorted(run)}')
  return runs


def our_runs(root: pathlib.Path) -> list[dict[str, Any]]:
  """Our evaluations on the reference's graphs under ``root``."""
  runs = _load(root / 'ours', lambda r: (
      r.get('algorithm'), r.get('model'), r.get('tag', ''), r.get('seed')))
  for run in runs:
    if run.get('eval_sets') != 'reference':
      raise ValueError(
          f'a record in {root / "ours"} ({run.get("algorithm")} '
          f'{run.get("model")} seed {run.get("seed")}) was not scored on '
          f'the reference\'s graphs (eval_sets={run.get("eval_sets")!r})')
  return runs


def _ours_score(run: dict[str, Any]) -> float:
  return float(run['test_scores'][SIZE]['score'])


def _iterations(run: dict[str, Any], ours: bool) -> float | None:
  if ours:
    return run.get('solver', {}).get(SIZE, {}).get('iterations_mean')
  return run.get('iterations_mean')


def _cell(scores: list[float], seeds: list[int]) -> str:
  if not scores:
    return '-'
  spread = f' ± {np.std(scores, ddof=1):.3f}' if len(scores) > 1 else ''
  return (f'{np.mean(scores):.3f}{spread} '
          f'({",".join(str(s) for s in sorted(seeds))})')


def _mean_or_dash(values: list[float | None], digits: int = 1) -> str:
  kept = [v for v in values if v is not None]
  return f'{np.mean(kept):.{digits}f}' if kept else '-'


def _reference_loss(run: dict[str, Any]) -> float | None:
  """The reference's logged test loss (their pointer softmax over each
  node's edges), if recorded."""
  return run.get('test_metrics', {}).get('test/loss/average_loss')


def _losses(runs: list[dict[str, Any]], refs: list[dict[str, Any]]
            ) -> tuple[str, str]:
  """Mean test losses, ours and the reference's; ours only where every
  run of the row has the reference's loss (``pointer_loss='edges'``):
  CLRS's loss (softmax over all N nodes) is another quantity, never
  below theirs on the same logits."""
  theirs = _mean_or_dash([_reference_loss(r) for r in refs], 3)
  if not all(r.get('pointer_loss', 'all_nodes') == 'edges' for r in runs):
    return 'n/c', theirs
  return _mean_or_dash([r['test_loss'][SIZE] for r in runs], 3), theirs


def rows(reference: list[dict[str, Any]], ours: list[dict[str, Any]]
         ) -> list[dict[str, Any]]:
  """One row per (algorithm, model, variant of ours), sorted."""
  ref_by: dict[tuple[str, str], list[dict[str, Any]]] = {}
  for run in reference:
    if str(run['test_size']) == SIZE:
      ref_by.setdefault((run['algorithm'], run['model']), []).append(run)
  ours_by: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
  for run in ours:
    key = (run['algorithm'], run['model'], run.get('tag', ''))
    ours_by.setdefault(key, []).append(run)
  out = []
  for (algorithm, model, tag), runs in sorted(ours_by.items()):
    refs = ref_by.get((algorithm, model), [])
    mine = [_ours_score(r) for r in runs]
    theirs = [float(r['test_score']) for r in refs]
    out.append(dict(
        algorithm=algorithm, model=model, tag=tag,
        ours=_cell(mine, [r['seed'] for r in runs]),
        reference=_cell(theirs, [r['seed'] for r in refs]),
        comparison=intervals.welch(mine, theirs) if theirs else None,
        iterations=(_mean_or_dash([_iterations(r, True) for r in runs]),
                    _mean_or_dash([_iterations(r, False) for r in refs])),
        losses=_losses(runs, refs),
        steps=sorted({int(r['checkpoint_step']) for r in runs}
                     | {int(r['train_steps']) for r in refs})))
  return out


def _difference(c: intervals.Comparison | None) -> tuple[str, str]:
  if c is None:
    return '-', 'no reference run'
  interval = ('' if c.low is None
              else f' [{c.low:+.3f}, {c.high:+.3f}]')
  return f'{c.difference:+.3f}{interval}', intervals.verdict(c)


def markdown(table_rows: list[dict[str, Any]]) -> str:
  """The rows as one markdown table (scores at 64 nodes, same graphs)."""
  head = ['algorithm', 'model', 'variant', 'steps', 'ours (seeds)',
          'reference (seeds)', 'ours - reference [95%]', 'verdict',
          'iterations, ours / reference', 'test loss, ours / reference']
  lines = tables.header(head)
  for r in table_rows:
    diff, verdict = _difference(r['comparison'])
    lines.append(tables.row([
        r['algorithm'], r['model'], r['tag'] or 'table settings',
        ', '.join(f'{s:,}' for s in r['steps']), r['ours'], r['reference'],
        diff, verdict, ' / '.join(r['iterations']),
        ' / '.join(r['losses'])]))
  lines += ['', NOTE]
  return tables.text(lines)


#: Said under the table.
NOTE = ('Scores: CLRS\'s score at 64 nodes on the reference\'s 100 test '
        'graphs (both sides the same graphs); ± is the sample standard '
        'deviation over the seeds named; the interval is Welch\'s 95% '
        'interval of the difference of means (none with one seed on a '
        'side). Iterations: mean solver iterations per test graph. Test '
        'loss: mean over seeds; ours is n/c (not comparable) unless the '
        'variant trains and scores the reference\'s pointer loss '
        '(pointer_loss=edges): CLRS\'s loss takes the softmax over all N '
        'nodes, theirs over each node\'s edges (README.md).')


def build(root: pathlib.Path) -> str | None:
  """``table.md``'s text for the records under ``root``, or None if there
  are none of ours."""
  ours = our_runs(root)
  if not ours:
    return None
  return markdown(rows(reference_runs(root), ours))
