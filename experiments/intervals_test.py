"""experiments.intervals against hand-computed values and scipy's Welch test."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments import intervals


def test_welch_interval_by_hand():
  # a: mean 2, sample variance 2; b: mean 1, sample variance 2. The
  # standard error is sqrt(2/2 + 2/2) = sqrt(2), the Welch-Satterthwaite
  # degrees of freedom (1 + 1)^2 / (1/1 + 1/1) = 2, and Student's t at
  # 0.975 with 2 degrees of freedom is 4.302653 (any t table).
  c = intervals.welch([1.0, 3.0], [0.0, 2.0])
  assert c.difference == 1.0
  assert c.df == pytest.approx(2.0)
  half = 4.302653 * math.sqrt(2)
  assert c.low == pytest.approx(1.0 - half, abs=1e-5)
  assert c.high == pytest.approx(1.0 + half, abs=1e-5)
  assert c.seeds == (2, 2) and c.method == 'welch'
  assert intervals.verdict(c) == 'not resolved at 2 seeds'


def test_welch_agrees_with_scipy():
  a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0]
  c = intervals.welch(a, b)
  # By hand: variances 1/3 and 4/3 of the means, df (5/3)^2 / (17/18).
  assert c.df == pytest.approx(50 / 17)
  assert intervals.verdict(c) == 'not resolved at 3 seeds'
  b = [5.0, 6.0, 7.0]  # variances 1/3 and 1/3: df (2/3)^2 / (2/9 / 2) = 4
  c = intervals.welch(a, b)
  assert c.df == pytest.approx(4.0)
  test = scipy_stats.ttest_ind(a, b, equal_var=False)
  assert c.p == pytest.approx(test.pvalue)
  low, high = test.confidence_interval(0.95)
  assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
  assert c.difference == -4.0
  assert intervals.verdict(c) == 'behind'
  assert intervals.verdict(intervals.welch(b, a)) == 'ahead'


def test_welch_edge_cases():
  one = intervals.welch([0.5], [0.1, 0.2, 0.3])
  assert one.low is None and one.p is None
  assert intervals.verdict(one) == '1 seed: no interval'
  assert intervals.verdict(intervals.welch([0.5, 0.6], [0.1, 0.2, 0.3])) == (
      'ahead')
  flat = intervals.welch([0.5, 0.5], [0.4, 0.4])
  assert (flat.low, flat.high, flat.p) == (
      pytest.approx(0.1), pytest.approx(0.1), 0.0)
  assert intervals.welch([0.5, 0.5], [0.5, 0.5]).p == 1.0
  unequal = intervals.welch([0.1, 0.9, 0.5], [0.2, 0.8])
  assert intervals.verdict(unequal) == 'not resolved at 3 and 2 seeds'


def test_holm_steps_down():
  # Sorted: 0.01 <= 0.05/3 is rejected; 0.03 > 0.05/2 stops the test.
  assert intervals.holm([0.01, 0.04, 0.03, None]) == [True, False, False, None]
  assert intervals.holm([0.01, 0.02, 0.04]) == [True, True, True]
  assert intervals.holm_adjusted([0.01, 0.04, 0.03, None]) == [
      pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06), None]


def _graphs(rng, means, graphs=50):
  """seed -> per-graph scores around each seed's mean."""
  return {s: list(np.clip(m + 0.05 * rng.standard_normal(graphs), 0, 1))
          for s, m in enumerate(means)}


def test_paired_bootstrap_on_synthetic_records():
  rng = np.random.default_rng(1)
  base = _graphs(rng, [0.6, 0.62, 0.58])
  # The same graphs 0.1 better on every seed: ahead, by exactly 0.1.
  better = {s: [x + 0.1 for x in v] for s, v in base.items()}
  c = intervals.paired_bootstrap(better, base)
  assert c.difference == pytest.approx(0.1)
  assert c.method == 'bootstrap' and c.seeds == (3, 3)
  assert 0.0 < c.low < 0.1 < c.high
  assert intervals.verdict(c) == 'ahead'
  assert intervals.verdict(intervals.paired_bootstrap(base, better)) == 'behind'
  # The same resampling every time.
  assert intervals.paired_bootstrap(better, base) == c
  # No difference: the interval holds 0.
  same = intervals.paired_bootstrap(base, dict(base))
  assert same.difference == 0.0 and same.low <= 0.0 <= same.high
  assert same.p == 1.0
  # Seeds that disagree widely leave a small gap unresolved.
  spread = _graphs(rng, [0.3, 0.9, 0.65])
  assert intervals.verdict(intervals.paired_bootstrap(spread, base)).startswith(
      'not resolved')


def test_paired_bootstrap_edge_cases():
  rng = np.random.default_rng(2)
  base = _graphs(rng, [0.6, 0.62])
  lone = intervals.paired_bootstrap({0: base[0]}, base)
  assert lone.low is None and intervals.verdict(lone) == '1 seed: no interval'
  assert lone.difference == pytest.approx(
      np.mean(base[0]) - np.mean([base[0], base[1]]))
  with pytest.raises(ValueError, match='one shared test set'):
    intervals.paired_bootstrap({0: [0.1, 0.2], 1: [0.1, 0.2]},
                           {0: [0.1], 1: [0.2]})
