"""Tests of the batched solve's backward modes (implicit, phantom, unrolled
gradients against each other, finite differences and their formulas) and of
the Hutchinson estimator."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import gradients
from deq_clrs import solvers
from deq_clrs.solvers_test import N
from deq_clrs.solvers_test import make_problem
from deq_clrs.solvers_test import tanh_map


def solve_loss(params, inputs, backward, config, f=tanh_map):
  """A scalar of the batched fixed point, for gradients (``anderson_test``
  uses it too)."""
  h0 = jnp.zeros_like(inputs['b'])
  h, _ = gradients.solve(f, h0, params, inputs, config=config,
                         backward=backward)
  return jnp.sum(jnp.sin(h) * jnp.arange(1, N + 1))


TIGHT = solvers.SolverConfig(method='anderson', rel_tol=0.0, abs_tol=1e-12,
                             max_iter=2000, ridge=1e-14)


@pytest.mark.parametrize('linear_solver', sorted(solvers.LINEAR_SOLVERS))
def test_implicit_gradient_matches_unrolled_and_finite_differences(
    linear_solver):
  with jax.enable_x64(True):
    params, inputs = make_problem([0.4, 0.8])
    implicit = solvers.BackwardConfig(mode='implicit',
                                      linear_solver=linear_solver,
                                      linear_tol=1e-12, linear_max_iter=500)
    unrolled = solvers.BackwardConfig(mode='unrolled', unroll_steps=300)
    g_imp = jax.grad(solve_loss, argnums=(0, 1))(params, inputs, implicit,
                                                 TIGHT)
    g_unr = jax.grad(solve_loss, argnums=(0, 1))(params, inputs, unrolled,
                                                 TIGHT)
    # Stated tolerance: 1e-7 relative to the gradient's scale (float64).
    for a, b in zip(jax.tree_util.tree_leaves(g_imp),
                    jax.tree_util.tree_leaves(g_unr)):
      np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    # Central finite differences along a random direction of W.
    d = jax.random.normal(jax.random.PRNGKey(3), (N, N))
    eps = 1e-5
    loss = lambda w: solve_loss({'W': w}, inputs, implicit, TIGHT)
    fd = (loss(params['W'] + eps * d) - loss(params['W'] - eps * d)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(g_imp[0]['W'], d), fd, rtol=1e-6)


def test_phantom_gradient_matches_its_formula():
  with jax.enable_x64(True):
    params, inputs = make_problem([0.5, 0.7])
    h0 = jnp.zeros_like(inputs['b'])
    h_star, _ = gradients.solve(tanh_map, h0, params, inputs, config=TIGHT)
    weights = jnp.arange(1, N + 1)
    outer = lambda h: jnp.sum(jnp.sin(h) * weights)
    for steps, lam in [(1, 1.0), (3, 0.5), (4, 1.0)]:
      backward = solvers.BackwardConfig(mode='phantom', phantom_steps=steps,
                                        phantom_damping=lam)
      got = jax.grad(solve_loss)(params, inputs, backward, TIGHT)

      # The formula: h_{j+1} = (1 - lam) h_j + lam f(h_j, theta) from the
      # stopped fixed point, differentiated in theta only through the k steps.
      def manual(p):
        h = jax.lax.stop_gradient(h_star)
        for _ in range(steps):
          fh = jax.vmap(tanh_map, (0, None, 0))(h, p, inputs)
          h = (1 - lam) * h + lam * fh
        return outer(h)

      want = jax.grad(manual)(params)
      np.testing.assert_allclose(got['W'], want['W'], rtol=1e-10)
    # k = 1 is Jacobian-free backprop: v^T df/dtheta at H* with v = dL/dH*.
    v = jnp.cos(h_star) * weights
    _, vjp = jax.vjp(
        lambda p: jax.vmap(tanh_map, (0, None, 0))(h_star, p, inputs), params)
    jfb = solvers.BackwardConfig(mode='phantom', phantom_steps=1)
    np.testing.assert_allclose(
        jax.grad(solve_loss)(params, inputs, jfb, TIGHT)['W'], vjp(v)[0]['W'],
        rtol=1e-8)


def test_phantom_forward_value_is_the_fixed_point():
  params, inputs = make_problem([0.5, 0.7])
  config = solvers.SolverConfig(rel_tol=1e-6, max_iter=500)
  h0 = jnp.zeros_like(inputs['b'])
  h_imp, _ = gradients.solve(tanh_map, h0, params, inputs, config=config,
                           backward=solvers.BackwardConfig(mode='implicit'))
  h_ph, _ = gradients.solve(tanh_map, h0, params, inputs, config=config,
                          backward=solvers.BackwardConfig(mode='phantom'))
  np.testing.assert_allclose(h_ph, h_imp, atol=1e-5)


def test_recording_the_trajectory_needs_the_phantom_mode():
  params, inputs = make_problem([0.5])
  h0 = jnp.zeros_like(inputs['b'])
  with pytest.raises(ValueError, match='phantom'):
    gradients.solve(tanh_map, h0, params, inputs, record_trajectory=True,
                  backward=solvers.BackwardConfig(mode='implicit'))


def test_solve_jits_and_unrolled_stats():
  params, inputs = make_problem([0.5, 0.9])
  h0 = jnp.zeros_like(inputs['b'])
  backward = solvers.BackwardConfig(mode='unrolled', unroll_steps=5)
  _, stats = jax.jit(functools.partial(
      gradients.solve, tanh_map, backward=backward))(h0, params, inputs)
  np.testing.assert_array_equal(stats.iterations, [5, 5])


def test_hutchinson_estimates_jacobian_frobenius_norm():
  with jax.enable_x64(True):
    params, inputs = make_problem([0.7])
    one = jax.tree_util.tree_map(lambda x: x[0], inputs)
    h = jnp.linspace(-1, 1, N)
    fun = lambda x: tanh_map(x, params, one)
    exact = jnp.sum(jnp.square(jax.jacfwd(fun)(h)))
    est = gradients.jacobian_frobenius_sq(fun, h, jax.random.PRNGKey(0),
                                        num_samples=4000)
    # 4000 Gaussian probes: relative standard error about sqrt(2/4000) ~ 2%.
    np.testing.assert_allclose(est, exact, rtol=0.1)
    # And it is differentiable in the parameters the function closes over.
    g = jax.grad(lambda w: gradients.jacobian_frobenius_sq(
        lambda x: tanh_map(x, {'W': w}, one), h, jax.random.PRNGKey(0), 8))(
            params['W'])
    assert float(jnp.linalg.norm(g)) > 0
