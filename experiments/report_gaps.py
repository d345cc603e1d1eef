"""gaps.md: each row of the report against its algorithm's baseline row
(flag-free; written by ``experiments.report``, rebuilt by
``experiments.rebuild_results``).

Per test size, each row of an algorithm less its ``nar`` row (and ``dear``
less ``nar_lt``): the difference of the means, its 95% interval (Welch's
over seeds, or a paired bootstrap over seeds and test graphs where both rows
stored per-graph scores: :mod:`experiments.intervals`), the verdict that follows
the interval, and for DEAR against NAR at 64 nodes the verdict after Holm's
correction over the algorithms; a positive difference means the row is
ahead. Rows are ``run_files.group``'s, as in table.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from experiments import intervals
from experiments import run_files
from experiments import tables

#: The row every other model of an algorithm is compared with in gaps.md.
BASELINE = 'nar'


def _scores(group_runs: list[dict[str, Any]], size: str) -> dict[int, float]:
  """seed -> test score at ``size`` of the runs that were scored there."""
  return {r['seed']: r['test_scores'][size]['score'] for r in group_runs
          if size in r['test_scores']}


#: The test size of the main comparison (DEAR against NAR, Holm-corrected).
MAIN_SIZE = '64'
#: The second baseline DEAR is compared with (NAR, learned termination).
LT_BASELINE = 'nar_lt'


def _per_graph(group_runs: list[dict[str, Any]], size: str
               ) -> dict[int, list[float]] | None:
  """seed -> per-graph test scores at ``size``; None unless every run
  scored there stored them (``test_scores_per_graph``)."""
  out = {}
  for r in group_runs:
    if size not in r['test_scores']:
      continue
    scores = (r.get('test_scores_per_graph') or {}).get(size)
    if not scores:
      return None
    out[r['seed']] = scores
  return out


def compare(mine: list[dict[str, Any]], base: list[dict[str, Any]],
            size: str) -> intervals.Comparison:
  """``mine`` less ``base`` at ``size``: a paired bootstrap over seeds and
  test graphs where both rows stored per-graph scores of one test set,
  Welch's interval over seeds otherwise."""
  graphs_mine, graphs_base = _per_graph(mine, size), _per_graph(base, size)
  if graphs_mine and graphs_base and len(
      {len(v) for v in (*graphs_mine.values(), *graphs_base.values())}) == 1:
    return intervals.paired_bootstrap(graphs_mine, graphs_base)
  return intervals.welch(list(_scores(mine, size).values()),
                     list(_scores(base, size).values()))


def _signed(x: float) -> str:
  return f'{x:+.3f}'


def _interval(c: intervals.Comparison) -> str:
  return '-' if c.low is None else f'[{_signed(c.low)}, {_signed(c.high)}]'


def _p(p: float | None) -> str:
  if p is None:
    return '-'
  return '< 0.001' if p < 0.001 else f'{p:.3f}'


def _method(c: intervals.Comparison) -> str:
  if c.method == 'bootstrap':
    return 'paired bootstrap'
  return 'Welch (no per-graph scores)'


def _score_cell(scores: dict[int, float]) -> str:
  return (f'{tables.mean_std(list(scores.values()))} '
          f'({tables.seeds_text(sorted(scores))})')


def _comparisons(runs: list[dict[str, Any]], baseline: str,
                 rows: Callable[[str], bool]
                 ) -> list[tuple[str, str, str, dict, dict, Any]]:
  """``(size, algorithm, row, row scores, baseline scores, comparison)``
  for each row (``rows(name)``) of an algorithm that has a ``baseline``
  row, at each test size both were scored at."""
  groups = run_files.group(runs)
  out = []
  for size in run_files.test_sizes(runs):
    for (alg, name), group_runs in groups.items():
      base_runs = groups.get((alg, baseline))
      if name == baseline or base_runs is None or not rows(name):
        continue
      mine, base = _scores(group_runs, size), _scores(base_runs, size)
      if mine and base:
        out.append((size, alg, name, mine, base,
                    compare(group_runs, base_runs, size)))
  return out


def main_comparison(runs: list[dict[str, Any]], size: str = MAIN_SIZE,
                    model: str = 'dear', baseline: str = BASELINE
                    ) -> list[str]:
  """DEAR less NAR per algorithm at ``size``, each with its own verdict and
  the verdict after Holm's correction over the algorithms (the lines of a
  markdown table and a sentence under it)."""
  found = [c for c in _comparisons(runs, baseline, lambda n: n == model)
           if c[0] == size]
  adjusted = intervals.holm_adjusted([c[-1].p for c in found])
  rows = []
  for (_, alg, _, mine, base, c), p in zip(found, adjusted):
    after = intervals.verdict(c)
    if p is not None:
      resolved = after in ('ahead', 'behind') and p <= 1 - intervals.LEVEL
      after = after if resolved else 'not resolved after Holm'
    rows.append([alg, _score_cell(mine), _score_cell(base),
                 _signed(c.difference), _interval(c), _p(c.p),
                 intervals.verdict(c), _p(p), after])
  head = ['algorithm', f'{model} score', f'{baseline} score',
          f'{model} − {baseline}', '95% interval', 'p', 'verdict',
          'Holm-adjusted p', 'verdict after Holm']
  resolved = sum(r[-1] in ('ahead', 'behind') for r in rows)
  return tables.table(head, rows) + [
      '', f'After Holm\'s correction over these {len(rows)} algorithms '
      f'(family-wise error 5%), {resolved} of {len(rows)} differences are '
      f'resolved.']


def gap_table(runs: list[dict[str, Any]], baseline: str = BASELINE) -> str:
  """gaps.md: each row of an algorithm against its ``baseline`` row.

  Three tables, after notes on the sign, the ``±`` and the intervals: the
  main comparison (``dear`` less ``baseline`` at ``MAIN_SIZE`` nodes,
  Holm-corrected over the algorithms); every row less ``baseline`` at every
  test size both were scored at, with the difference over the seeds both
  have (``-`` when they share none); and ``dear`` less ``LT_BASELINE``.

  Returns:
    The markdown text.
  """
  vs_base = _comparisons(runs, baseline, lambda name: True)
  vs_lt = _comparisons(runs, LT_BASELINE, lambda name: name == 'dear')
  every = []
  for size, alg, name, mine, base, c in vs_base:
    shared = sorted(set(mine) & set(base))
    paired = (f'{_signed(np.mean([mine[s] - base[s] for s in shared]))} '
              f'({tables.seeds_text(shared)})' if shared else '-')
    every.append([size, alg, name, _score_cell(mine), _score_cell(base),
                  _signed(c.difference), _interval(c), intervals.verdict(c),
                  _method(c), paired])
  lt = [[size, alg, _score_cell(mine), _score_cell(base),
         _signed(c.difference), _interval(c), intervals.verdict(c), _method(c)]
        for size, alg, _, mine, base, c in vs_lt]
  bootstrapped = any(c[-1].method == 'bootstrap' for c in vs_base + vs_lt)
  lines = [
      f'# Each row against {baseline}', '', GAPS_NOTE, '',
      BOOTSTRAP_NOTE if bootstrapped else WELCH_ONLY_NOTE, '',
      f'## Main comparison: dear − {baseline} at {MAIN_SIZE} nodes, '
      f'corrected for multiple comparisons', '',
      *main_comparison(runs, baseline=baseline), '',
      f'## Every row − {baseline}', '',
      *tables.table(['test size', 'algorithm', 'row', 'row score',
                     f'{baseline} score', f'row − {baseline}',
                     '95% interval', 'verdict', 'interval from',
                     f'row − {baseline}, shared seeds'], every), '',
      f'## dear − {LT_BASELINE} (learned termination)', '',
      *tables.table(['test size', 'algorithm', 'dear score',
                     f'{LT_BASELINE} score', f'dear − {LT_BASELINE}',
                     '95% interval', 'verdict', 'interval from'], lt)]
  return tables.text(lines)


#: Said at the top of gaps.md: the sign, the ± and the verdicts.
GAPS_NOTE = (
    'Generated by `experiments.report` from the run records; do not edit. '
    '**Sign: every difference is the row\'s CLRS score less the '
    'baseline\'s, so a positive difference means the row (DEAR) is ahead '
    'and a negative one that it trails.** Score cells are the mean ± the '
    '*population* standard deviation (numpy\'s default, ddof=0) over the '
    'seeds named, as in table.md. Intervals are 95% intervals of the '
    'difference; the verdict follows the interval: `ahead` (it lies above '
    '0), `behind` (below 0), `not resolved at n seeds` (it holds 0), '
    '`1 seed: no interval` (a side has one seed). Welch intervals use each '
    'side\'s *sample* variance (ddof=1), the Welch-Satterthwaite degrees of '
    'freedom and Student\'s t quantile; p is Welch\'s two-sided p-value. '
    'Each verdict holds for its own comparison; the main comparison also '
    'gives the verdict after Holm\'s correction over its algorithms.')
#: Said when no interval could use per-graph scores.
WELCH_ONLY_NOTE = (
    'No run here stored per-graph test scores (runs store them from now '
    'on, as `test_scores_per_graph`), so every interval is Welch\'s over '
    'seeds. All runs are scored on one shared test set, so these intervals '
    'leave out test-set noise: they say how far another seed could move '
    'the score, not another draw of test graphs.')
#: Said when some interval did.
BOOTSTRAP_NOTE = (
    'Where both rows stored per-graph test scores, the interval is a paired '
    'bootstrap over seeds and test graphs (all runs share one test set, so '
    'graph i of one row pairs with graph i of the other; 10,000 replicates, '
    'percentile interval) of the mean per-graph score, which is the CLRS '
    'score where each output is an accuracy over graphs of one size and '
    'differs slightly for F1-scored mask outputs; elsewhere it is Welch\'s '
    'over seeds, which leaves out test-set noise.')
