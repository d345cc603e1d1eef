"""Tests of ``anderson_growing`` (:class:`deq_clrs.anderson.GrowingAnderson`)
against torchdeq's Anderson, re-implemented in NumPy: its iterates, its
schedule, ``return_best``, per-graph stopping and gradients around it."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import gradients
from deq_clrs import solvers
from deq_clrs.gradients_test import solve_loss
from deq_clrs.solvers_test import N
from deq_clrs.solvers_test import linear_map
from deq_clrs.solvers_test import make_problem
from deq_clrs.solvers_test import tanh_map


def torchdeq_anderson(f, x0, max_iter, tol, m=6, lam=1e-4, tau=1.0):
  """The DEAR authors' torchdeq ``anderson_solver`` (stop_mode='rel',
  first_hit_under_tol=True), written in NumPy from its description.

  A whole batch runs together, as there: X[0] = x0, X[1] = f(x0) are plain
  steps; evaluation k + 1 (k >= 2) maps the mixture of the first
  n = min(k, m) history slots (slot k % m is overwritten); the relative
  residual ||f(x) - x|| / (||f(x)|| + 1e-9) of evaluations 3.. is tested
  with a strict ``<``; each row keeps its lowest-residual f(x) until its
  first one under ``tol``, then keeps that one; the loop ends when every
  row's current residual is under ``tol``, or after ``max_iter``
  evaluations.

  Args:
    f: the batched map, [B, D] -> [B, D].
    x0: [B, D] initial iterates.
    max_iter: evaluations allowed.
    tol: relative tolerance.
    m, lam, tau: history size, ridge, mixing.

  Returns:
    ``(x, step, residual, hit, outputs)``: the kept f(x) [B, D], its
    evaluation index from 1 [B], its relative residual [B], whether it was
    under ``tol`` [B], and every evaluation's output [evaluations, B, D].
  """
  bsz, dim = x0.shape
  xs = np.zeros((bsz, m, dim))
  fs = np.zeros((bsz, m, dim))
  xs[:, 0], fs[:, 0] = x0, f(x0)
  xs[:, 1], fs[:, 1] = fs[:, 0], f(fs[:, 0])
  outputs = [fs[:, 0].copy(), fs[:, 1].copy()]
  lowest = np.full(bsz, 1e8)
  kept, step = x0.copy(), np.zeros(bsz, int)
  hit = np.zeros(bsz, bool)
  for k in range(2, max_iter):
    n = min(k, m)
    g = fs[:, :n] - xs[:, :n]
    system = np.zeros((bsz, n + 1, n + 1))
    system[:, 0, 1:] = system[:, 1:, 0] = 1
    system[:, 1:, 1:] = g @ g.transpose(0, 2, 1) + lam * np.eye(n)
    rhs = np.zeros((bsz, n + 1))
    rhs[:, 0] = 1
    alpha = np.linalg.solve(system, rhs[..., None])[:, 1:, 0]
    xs[:, k % m] = (tau * np.einsum('bn,bnd->bd', alpha, fs[:, :n])
                    + (1 - tau) * np.einsum('bn,bnd->bd', alpha, xs[:, :n]))
    fs[:, k % m] = f(xs[:, k % m])
    outputs.append(fs[:, k % m].copy())
    rel = (np.linalg.norm(fs[:, k % m] - xs[:, k % m], axis=1)
           / (np.linalg.norm(fs[:, k % m], axis=1) + 1e-9))
    is_lowest = (rel < lowest) & ~hit
    hit |= rel < tol
    kept[is_lowest] = fs[is_lowest, k % m]
    lowest[is_lowest] = rel[is_lowest]
    step[is_lowest] = k + 1
    if rel.max() < tol:
      break
  return kept, step, lowest, hit, np.stack(outputs)


def _numpy_map(f, params, inputs):
  """The batched NumPy version of a one-example map of this file."""
  batched = jax.jit(jax.vmap(f, (0, None, 0)))
  return lambda x: np.asarray(batched(jnp.asarray(x), params, inputs))


# Two of the four in the default run; all four with --runslow.
@pytest.mark.parametrize('f, tol', [
    (linear_map, 0.1), (tanh_map, 1e-3),
    pytest.param(linear_map, 1e-3, marks=pytest.mark.slow),
    pytest.param(tanh_map, 0.1, marks=pytest.mark.slow)])
def test_growing_anderson_follows_torchdeq(f, tol):
  with jax.enable_x64(True):
    params, inputs = make_problem([0.1, 0.5, 0.8, 0.95, 0.99], seed=2)
    h0 = jnp.zeros_like(inputs['b'])
    want, step, lowest, hit, outputs = torchdeq_anderson(
        _numpy_map(f, params, inputs), np.zeros(h0.shape), 40, tol)
    assert np.all(hit)  # Every graph converges; they need different counts.
    assert len(set(step.tolist())) > 1, step
    config = solvers.SolverConfig(method='anderson_growing', rel_tol=tol,
                                  max_iter=40)
    # training=False: the solver's iterate, without the phantom step.
    h, stats, traj = gradients.solve(f, h0, params, inputs, config=config,
                                   record_trajectory=True, training=False)
    np.testing.assert_allclose(h, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.iterations, step)
    np.testing.assert_array_equal(stats.returned, step)
    assert np.all(np.asarray(stats.converged))
    np.testing.assert_allclose(stats.rel_residual, lowest, rtol=1e-6)
    # The same iterates, evaluation by evaluation, up to each graph's stop
    # (the batch goes on until its slowest graph, which changes nothing).
    for b, k in enumerate(step):
      np.testing.assert_allclose(traj[b, :k], outputs[:k, b], rtol=1e-9,
                                 atol=1e-12)


def test_growing_anderson_checks_the_tolerance_from_the_third_evaluation():
  # f(h) = b: the second evaluation is exact, but torchdeq tests
  # evaluations from the third on; jaxopt's schedule stops at the second.
  params, inputs = make_problem([0.0, 0.0])
  h0 = jnp.zeros_like(inputs['b'])
  for method, first in [('anderson_growing', 3), ('anderson', 2),
                        ('fixed_point', 2)]:
    config = solvers.SolverConfig(method=method, rel_tol=0.1, max_iter=40)
    h, stats = gradients.solve(linear_map, h0, params, inputs, config=config)
    np.testing.assert_array_equal(stats.iterations, [first, first])
    np.testing.assert_allclose(h, inputs['b'], atol=1e-6)


@pytest.mark.parametrize('f, cap', [
    (linear_map, 15), pytest.param(tanh_map, 9, marks=pytest.mark.slow)])
def test_return_best_keeps_the_lowest_residual_iterate_like_torchdeq(f, cap):
  with jax.enable_x64(True):
    params, inputs = make_problem([0.9, 0.95, 0.99, 0.999], seed=4)
    h0 = jnp.zeros_like(inputs['b'])
    tol = 1e-12  # Nobody converges within the cap (eval_max_iter).
    want, step, lowest, hit, outputs = torchdeq_anderson(
        _numpy_map(f, params, inputs), np.zeros(h0.shape), cap, tol)
    assert not np.any(hit)
    # The case that matters: some graph's best is not its last evaluation.
    assert np.any(step < cap), step
    best = solvers.SolverConfig(method='anderson_growing', rel_tol=tol,
                                eval_max_iter=cap, return_best=True)
    h, stats = gradients.solve(f, h0, params, inputs, config=best,
                             training=False)
    np.testing.assert_allclose(h, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.returned, step)
    np.testing.assert_allclose(stats.rel_residual, lowest, rtol=1e-6)
    # Non-convergence stays reported: not converged, every evaluation spent.
    assert not np.any(np.asarray(stats.converged))
    np.testing.assert_array_equal(stats.iterations, [cap] * 4)
    # Without return_best: the last evaluation.
    last = dataclasses.replace(best, return_best=False)
    h_last, stats_last = gradients.solve(f, h0, params, inputs, config=last,
                                       training=False)
    np.testing.assert_allclose(h_last, outputs[cap - 1], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(stats_last.returned, [cap] * 4)
    assert np.all(np.asarray(stats_last.rel_residual)
                  >= np.asarray(stats.rel_residual))


@pytest.mark.parametrize('f', [
    linear_map, pytest.param(tanh_map, marks=pytest.mark.slow)])
def test_growing_history_needs_fewer_iterations_than_jaxopts_schedule(f):
  # A symmetric contraction (eigenvalues spread over [-scale, scale]) that
  # plain iteration solves slowly, at DEAR's tolerance: jaxopt spends its
  # first 6 evaluations on plain steps, torchdeq's schedule 2.
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(5), 3)
  dim, graphs = 32, 8
  q, _ = jnp.linalg.qr(jax.random.normal(k1, (dim, dim)))
  params = {'W': (q * jnp.linspace(-1.0, 1.0, dim)) @ q.T}
  inputs = {'scale': jax.random.uniform(k2, (graphs,), minval=0.8,
                                        maxval=0.95),
            'b': 0.3 * jax.random.normal(k3, (graphs, dim))}
  h0 = jnp.zeros_like(inputs['b'])
  its = {}
  for method in ('anderson', 'anderson_growing'):
    config = solvers.SolverConfig(method=method, rel_tol=0.1, max_iter=100)
    _, stats = gradients.solve(f, h0, params, inputs, config=config)
    assert np.all(np.asarray(stats.converged))
    its[method] = np.asarray(stats.iterations)
  assert np.all(its['anderson_growing'] <= its['anderson']), its
  assert its['anderson_growing'].mean() <= its['anderson'].mean() - 0.5, its


@pytest.mark.parametrize('return_best', [False, True])
def test_growing_anderson_stops_each_graph_on_its_own(return_best):
  params, inputs = make_problem([0.2, 0.9, 0.99])
  h0 = jnp.zeros_like(inputs['b'])
  config = solvers.SolverConfig(method='anderson_growing', rel_tol=1e-4,
                                eval_max_iter=12, return_best=return_best)
  h, stats = jax.jit(functools.partial(
      gradients.solve, tanh_map, config=config, training=False))(
          h0, params, inputs)
  assert len(set(np.asarray(stats.iterations).tolist())) > 1, stats
  for i in range(3):
    one = jax.tree_util.tree_map(lambda x, i=i: x[i:i + 1], inputs)
    hi, si = gradients.solve(tanh_map, h0[i:i + 1], params, one, config=config,
                           training=False)
    np.testing.assert_allclose(hi[0], h[i], rtol=1e-5, atol=1e-6)
    for a, b in zip(si, stats):  # float32: the residuals to rounding.
      np.testing.assert_allclose(a[0], b[i], rtol=1e-3)


def test_growing_anderson_phantom_gradient_is_the_one_step_formula():
  with jax.enable_x64(True):
    params, inputs = make_problem([0.5, 0.9])
    config = solvers.SolverConfig(method='anderson_growing', rel_tol=1e-3,
                                  max_iter=40, return_best=True)
    h0 = jnp.zeros_like(inputs['b'])
    h_star, _ = gradients.solve(tanh_map, h0, params, inputs, config=config,
                              training=False)
    weights = jnp.arange(1, N + 1)
    v = jnp.cos(jax.vmap(tanh_map, (0, None, 0))(h_star, params, inputs))
    _, vjp = jax.vjp(
        lambda p: jax.vmap(tanh_map, (0, None, 0))(h_star, p, inputs), params)
    got = jax.grad(solve_loss)(params, inputs, solvers.BackwardConfig(), config)
    np.testing.assert_allclose(got['W'], vjp(v * weights)[0]['W'],
                               rtol=1e-8)
    # And implicit differentiation around it still works.
    tight = dataclasses.replace(config, rel_tol=1e-12, max_iter=400,
                                ridge=1e-14)
    imp = jax.grad(solve_loss)(params, inputs, solvers.BackwardConfig(
        mode='implicit', linear_tol=1e-12, linear_max_iter=500), tight)
    unr = jax.grad(solve_loss)(params, inputs, solvers.BackwardConfig(
        mode='unrolled', unroll_steps=300), tight)
    np.testing.assert_allclose(imp['W'], unr['W'], rtol=1e-7, atol=1e-9)


def test_growing_anderson_on_a_matrix_state_is_the_flat_solve():
  # A graph's state is [N, H]: the history's inner products and mixtures
  # run over every axis of a leaf, as over the flattened vector.
  params, inputs = make_problem([0.3, 0.9, 0.99])
  h0 = jnp.zeros_like(inputs['b'])
  config = solvers.SolverConfig(method='anderson_growing', rel_tol=1e-4,
                                eval_max_iter=30, return_best=True)
  flat, stats = gradients.solve(tanh_map, h0, params, inputs, config=config,
                              training=False)

  def matrix_map(h, params, inputs):
    return tanh_map(h.reshape(N), params, inputs).reshape(N // 2, 2)

  grid, grid_stats = gradients.solve(matrix_map, h0.reshape(3, N // 2, 2),
                                   params, inputs, config=config,
                                   training=False)
  np.testing.assert_allclose(grid.reshape(3, N), flat, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(grid_stats.iterations, stats.iterations)
