"""Intervals and verdicts for comparing two models' test scores.

Flag-free and without plotting, so that the report (``experiments.report``,
``gaps.md``) and its tests share one definition of each statistic.

* :func:`welch` compares the seeds of two rows: the difference of the means,
  its 95% interval with Welch's standard error (each side's *sample*
  variance, ddof=1) and the Welch-Satterthwaite degrees of freedom, the
  Student t quantile, and the two-sided p-value of Welch's t test. It is
  what ``scipy.stats.ttest_ind(a, b, equal_var=False)`` computes.
* :func:`paired_bootstrap` compares per-graph test scores: all runs share one
  test set, so graph ``i`` of one row pairs with graph ``i`` of the other.
  Each replicate draws the graphs once (with replacement, the same draw for
  both rows) and each row's seeds (with replacement, separately: seed 0 of
  one model has nothing to do with seed 0 of another), and takes the
  difference of the mean per-graph scores. The interval holds the middle
  95% of the replicates, so it covers test-set noise as well as the seeds'
  spread.
* :func:`verdict` turns an interval into the label the report prints, and
  :func:`holm` corrects a family of p-values for multiple comparisons
  (Holm's step-down method, which keeps the chance of any false 'ahead' or
  'behind' in the family at most ``alpha``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

#: The confidence level of every interval.
LEVEL = 0.95
#: Replicates of :func:`paired_bootstrap`.
REPLICATES = 10_000


@dataclasses.dataclass(frozen=True)
class Comparison:
  """A difference ``a - b`` of mean scores with its interval.

  ``low``/``high``/``p``/``df`` are None where a side has one seed (no
  interval). ``method`` is ``'welch'`` or ``'bootstrap'``; ``seeds`` the
  number of seeds of each side.
  """
  difference: float
  low: float | None
  high: float | None
  p: float | None
  df: float | None
  method: str
  seeds: tuple[int, int]


def welch(a: Sequence[float], b: Sequence[float],
          level: float = LEVEL) -> Comparison:
  """Welch's interval for ``mean(a) - mean(b)`` over independent seeds.

  Args:
    a, b: one score per seed of each side.
    level: the interval's confidence level.

  Returns:
    The comparison; without interval where a side has one seed. Where both
    sides have no spread at all (every seed scored the same), the interval
    is the difference itself and p is 0 (1 for no difference): Welch's t is
    infinite, as scipy's is.
  """
  a, b = np.asarray(a, float), np.asarray(b, float)
  diff = float(a.mean() - b.mean())
  seeds = (a.size, b.size)
  if min(seeds) < 2:
    return Comparison(diff, None, None, None, None, 'welch', seeds)
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  se = math.sqrt(va + vb)
  if se == 0.0:
    p = 0.0 if diff else 1.0
    return Comparison(diff, diff, diff, p, math.inf, 'welch', seeds)
  df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  q = float(scipy_stats.t.ppf(0.5 + level / 2, df))
  p = float(2 * scipy_stats.t.sf(abs(diff) / se, df))
  return Comparison(diff, diff - q * se, diff + q * se, p, float(df),
                    'welch', seeds)


def paired_bootstrap(a: Mapping[int, Sequence[float]],
                     b: Mapping[int, Sequence[float]],
                     level: float = LEVEL, replicates: int = REPLICATES,
                     seed: int = 0) -> Comparison:
  """A bootstrap interval over seeds and test graphs for ``a - b``.

  Args:
    a, b: seed -> per-graph scores on the shared test set (every list as
      long as the others, graph ``i`` the same graph in each).
    level: the interval's confidence level.
    replicates: bootstrap replicates.
    seed: of the resampling, so that a report is the same every time.

  Returns:
    The comparison: the difference of the mean per-graph scores (the mean
    over seeds of each seed's mean over graphs), the percentile interval,
    and as p twice the smaller share of replicates on either side of 0
    (at most 1; at least ``1 / replicates`` where none is). Without
    interval where a side has one seed (resampling the graphs alone would
    leave out the seeds' spread).

  Raises:
    ValueError: the lists are not all of one length.
  """
  xa = np.asarray([a[s] for s in sorted(a)], float)
  xb = np.asarray([b[s] for s in sorted(b)], float)
  if xa.ndim != 2 or xb.ndim != 2 or xa.shape[1] != xb.shape[1]:
    raise ValueError('per-graph scores of different lengths: not one '
                     'shared test set')
  diff = float(xa.mean() - xb.mean())
  seeds = (xa.shape[0], xb.shape[0])
  if min(seeds) < 2:
    return Comparison(diff, None, None, None, None, 'bootstrap', seeds)
  rng = np.random.default_rng(seed)
  graphs = xa.shape[1]
  g = rng.integers(0, graphs, size=(replicates, graphs))
  sa = rng.integers(0, seeds[0], size=(replicates, seeds[0]))
  sb = rng.integers(0, seeds[1], size=(replicates, seeds[1]))
  # Each seed's mean over the drawn graphs, then the mean over drawn seeds.
  ma = xa[:, g].mean(axis=2).T  # [replicates, seeds]
  mb = xb[:, g].mean(axis=2).T
  reps = (np.take_along_axis(ma, sa, 1).mean(axis=1)
          - np.take_along_axis(mb, sb, 1).mean(axis=1))
  tail = (1 - level) / 2
  low, high = np.quantile(reps, [tail, 1 - tail])
  share = min(np.mean(reps <= 0), np.mean(reps >= 0))
  p = float(min(1.0, max(2 * share, 1 / replicates)))
  return Comparison(diff, float(low), float(high), p, None, 'bootstrap',
                    seeds)


def verdict(c: Comparison) -> str:
  """'ahead' (the interval is above 0: ``a`` scores higher), 'behind'
  (below 0), 'not resolved at n seeds' (it holds 0) or '1 seed: no
  interval'."""
  if c.low is None:
    return '1 seed: no interval'
  if c.low > 0:
    return 'ahead'
  if c.high < 0:
    return 'behind'
  n, m = c.seeds
  return f'not resolved at {n} seeds' if n == m else (
      f'not resolved at {n} and {m} seeds')


def holm(p_values: Sequence[float | None], alpha: float = 1 - LEVEL
         ) -> list[bool | None]:
  """Holm's step-down test of a family of hypotheses.

  Args:
    p_values: one per comparison; None for one without a p-value (it is
      not part of the family).
    alpha: the family-wise error rate.

  Returns:
    Per comparison, whether its null hypothesis (no difference) is
    rejected; None where its p-value was None.
  """
  family = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
  out: list[bool | None] = [None if p is None else False for p in p_values]
  m = len(family)
  for rank, (p, i) in enumerate(family):
    if p > alpha / (m - rank):
      break
    out[i] = True
  return out


def holm_adjusted(p_values: Sequence[float | None]) -> list[float | None]:
  """Holm-adjusted p-values (reject at ``alpha`` where ``<= alpha``); None
  where the p-value was None."""
  family = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
  out: list[float | None] = [None] * len(p_values)
  m, running = len(family), 0.0
  for rank, (p, i) in enumerate(family):
    running = max(running, min(1.0, (m - rank) * p))
    out[i] = running
  return out
