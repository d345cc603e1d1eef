"""Tests of the alignment regulariser's pieces against brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import alignment


def brute_force_cost(dist: np.ndarray, rows: int, cols: int) -> float:
  """Cheapest in-order matching, by enumerating every matching."""
  if rows == 0:
    return 0.0
  strict = rows <= cols
  best = np.inf
  for path in itertools.product(range(cols), repeat=rows):
    steps = np.diff(path)
    if np.all(steps > 0 if strict else steps >= 0):
      best = min(best, sum(dist[i, j] for i, j in enumerate(path)))
  return best


@pytest.mark.parametrize('seed', range(3))
def test_monotone_cost_is_the_cheapest_matching(seed):
  rng = np.random.default_rng(seed)
  dist = rng.uniform(0.0, 1.0, (4, 6)).astype(np.float32)
  for rows in range(5):
    for cols in range(1, 7):
      got = float(alignment.monotone_cost(jnp.asarray(dist), rows, cols))
      want = brute_force_cost(dist, rows, cols)
      assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (rows, cols)


def test_monotone_cost_never_reuses_a_column_when_it_need_not():
  # Both rows are cheapest at column 0; strictly increasing forces the
  # second to column 1, while with more rows than columns they may share.
  dist = jnp.array([[0.0, 5.0], [0.0, 7.0]])
  assert float(alignment.monotone_cost(dist, 2, 2)) == 7.0
  assert float(alignment.monotone_cost(dist, 2, 1)) == 0.0


def test_the_gradient_follows_the_chosen_matching():
  dist = jnp.array([[1.0, 0.2, 3.0], [2.0, 4.0, 0.5]])
  grad = jax.grad(lambda d: alignment.monotone_cost(d, 2, 3))(dist)
  np.testing.assert_array_equal(grad, [[0, 1, 0], [0, 0, 1]])


def test_state_distances_are_node_averaged_l2_norms():
  a = jnp.array([[[3.0, 4.0], [0.0, 0.0]]])           # [1, N=2, D=2]
  b = jnp.array([[[0.0, 0.0], [0.0, 1.0]],
                 [[3.0, 4.0], [0.0, 0.0]]])            # [2, 2, 2]
  d = alignment.state_distances(a, b)
  np.testing.assert_allclose(d, [[(5.0 + 1.0) / 2, 0.0]], atol=1e-5)


@pytest.mark.parametrize('iterations,cap,want', [
    (1, 3, 0), (2, 3, 1), (7, 3, 1), (21, 3, 1), (22, 3, 2), (40, 3, 3),
    (40, 1, 1), (160, 3, 3)])
def test_sample_count_follows_the_reference_rule(iterations, cap, want):
  got = alignment.sample_count(jnp.int32(iterations), cap)
  assert int(got) == want
  assert alignment.max_samples(40) == 3


@pytest.mark.parametrize('iterations', [1, 2, 5, 23, 40])
def test_sample_indices_are_distinct_sorted_earlier_iterates(iterations):
  slots, cap = 3, 40
  count = int(alignment.sample_count(jnp.int32(iterations), slots))
  seen = set()
  for seed in range(20):
    idx, valid = alignment.sample_indices(jax.random.PRNGKey(seed),
                                          jnp.int32(iterations), slots, cap)
    idx, valid = np.asarray(idx), np.asarray(valid)
    np.testing.assert_array_equal(valid, np.arange(slots) < count)
    chosen = idx[valid]
    assert np.all(np.diff(chosen) > 0)
    assert np.all((chosen >= 0) & (chosen <= iterations - 2))
    seen.update(chosen.tolist())
  # Different keys reach different iterates (when there is a choice).
  if iterations - 1 > count:
    assert len(seen) > count


def test_alignment_loss_matches_a_reference_computation():
  rng = np.random.default_rng(0)
  b, s, t, n, d = 3, 2, 4, 5, 3
  samples = rng.normal(size=(b, s, n, d)).astype(np.float32)
  final = rng.normal(size=(b, n, d)).astype(np.float32)
  teacher = rng.normal(size=(b, t, n, d)).astype(np.float32)
  valid = np.array([[True, True], [True, False], [False, False]])
  steps = np.array([4, 1, 3])  # NAR states of each graph's own.

  def dist(x, y):
    return np.mean(np.linalg.norm(x - y, axis=-1))

  want = []
  for g in range(b):
    rows = int(valid[g].sum())
    table = np.array([[dist(samples[g, i], teacher[g, j]) for j in range(t)]
                      for i in range(s)])
    path = brute_force_cost(table, rows, steps[g]) / max(rows, 1)
    want.append(path + dist(final[g], teacher[g, steps[g] - 1]))
  got = alignment.alignment_loss(jnp.asarray(samples), jnp.asarray(valid),
                                 jnp.asarray(final), jnp.asarray(teacher),
                                 jnp.asarray(steps))
  assert float(got) == pytest.approx(float(np.mean(want)), rel=1e-5)


def test_alignment_loss_ignores_invalid_samples_and_the_teacher():
  rng = np.random.default_rng(1)
  samples = jnp.asarray(rng.normal(size=(2, 2, 3, 2)), jnp.float32)
  final = jnp.asarray(rng.normal(size=(2, 3, 2)), jnp.float32)
  teacher = jnp.asarray(rng.normal(size=(2, 3, 3, 2)), jnp.float32)
  valid = jnp.array([[True, False], [True, True]])
  steps = jnp.array([3, 2])
  grads = jax.grad(alignment.alignment_loss, argnums=(0, 2, 3))(
      samples, valid, final, teacher, steps)
  g_samples, g_final, g_teacher = grads
  assert float(jnp.abs(g_samples[0, 1]).sum()) == 0.0
  assert float(jnp.abs(g_samples[0, 0]).sum()) > 0.0
  assert float(jnp.abs(g_final).sum()) > 0.0
  # The teacher is frozen.
  assert float(jnp.abs(g_teacher).sum()) == 0.0
