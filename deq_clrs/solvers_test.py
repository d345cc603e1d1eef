"""Tests of the fixed-point solvers: convergence, per-example stopping, caps,
gradients of every backward mode, and the Jacobian regulariser."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import solvers

N = 6


def linear_map(h, params, inputs):
  """f(h) = scale * W h + b: a contraction when |scale| * ||W||_2 < 1."""
  return inputs['scale'] * (params['W'] @ h) + inputs['b']


def tanh_map(h, params, inputs):
  """A smooth nonlinear contraction, f(h) = tanh(scale * W h + b)."""
  return jnp.tanh(inputs['scale'] * (params['W'] @ h) + inputs['b'])


def make_problem(scales, seed=0):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  w = jax.random.normal(k1, (N, N))
  w = w / jnp.linalg.norm(w, 2)  # spectral norm 1
  scales = jnp.asarray(scales, w.dtype)
  b = jax.random.normal(k2, (len(scales), N), w.dtype)
  return {'W': w}, {'scale': scales, 'b': b}


def exact_linear_fixed_point(params, inputs):
  def one(scale, b):
    return jnp.linalg.solve(jnp.eye(N) - scale * params['W'], b)
  return jax.vmap(one)(inputs['scale'], inputs['b'])


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_forward_solvers_reach_the_fixed_point(method):
  with jax.enable_x64(True):
    params, inputs = make_problem([0.3, 0.6, 0.9])
    config = solvers.SolverConfig(method=method, rel_tol=0.0, abs_tol=1e-10,
                                  max_iter=1000, ridge=1e-12)
    h0 = jnp.zeros_like(inputs['b'])
    h, stats = jax.jit(functools.partial(
        solvers.solve, linear_map, config=config))(h0, params, inputs)
    np.testing.assert_allclose(h, exact_linear_fixed_point(params, inputs),
                               atol=1e-8)
    assert stats.converged.shape == (3,)
    assert bool(jnp.all(stats.converged))
    assert bool(jnp.all(stats.abs_residual <= 1e-10))
    # The reported residual is the real one at the returned iterate.
    true_res = jnp.linalg.norm(
        jax.vmap(linear_map, (0, None, 0))(h, params, inputs) - h, axis=-1)
    assert bool(jnp.all(true_res <= 1e-9))


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_each_example_stops_on_its_own(method):
  # Contraction factors 0.1 < 0.5 < 0.95: harder examples need more steps.
  params, inputs = make_problem([0.1, 0.5, 0.95])
  config = solvers.SolverConfig(method=method, rel_tol=1e-4, abs_tol=0.0,
                                max_iter=500)
  h0 = jnp.zeros_like(inputs['b'])
  _, stats = solvers.solve(tanh_map, h0, params, inputs, config=config)
  its = np.asarray(stats.iterations)
  assert np.all(np.asarray(stats.converged))
  assert its[0] < its[2], its
  assert len(set(its.tolist())) >= 2, its
  assert np.all(np.asarray(stats.rel_residual) <= 1e-4)


def test_batch_solve_equals_solving_each_example_alone():
  params, inputs = make_problem([0.2, 0.9])
  config = solvers.SolverConfig(method='anderson', rel_tol=1e-3, max_iter=200)
  h0 = jnp.zeros_like(inputs['b'])
  h, stats = solvers.solve(tanh_map, h0, params, inputs, config=config)
  for i in range(2):
    one = jax.tree_util.tree_map(lambda x, i=i: x[i:i + 1], inputs)
    hi, si = solvers.solve(tanh_map, h0[i:i + 1], params, one, config=config)
    np.testing.assert_allclose(hi[0], h[i], rtol=1e-5, atol=1e-6)
    assert int(si.iterations[0]) == int(stats.iterations[i])


def test_relative_tolerance_is_relative():
  # Same map, inputs scaled by 1000: the relative criterion needs the same
  # number of iterations, the absolute one needs more.
  params, inputs = make_problem([0.8, 0.8])
  inputs['b'] = inputs['b'].at[1].multiply(1000.0)
  h0 = jnp.zeros_like(inputs['b'])
  rel = solvers.SolverConfig(method='fixed_point', rel_tol=1e-3, max_iter=500)
  _, stats = solvers.solve(linear_map, h0, params, inputs, config=rel)
  assert int(stats.iterations[0]) == int(stats.iterations[1])
  absolute = solvers.SolverConfig(method='fixed_point', rel_tol=0.0,
                                  abs_tol=1e-3, max_iter=500)
  _, stats = solvers.solve(linear_map, h0, params, inputs, config=absolute)
  assert int(stats.iterations[0]) < int(stats.iterations[1])


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_hitting_the_cap_is_reported(method):
  params, inputs = make_problem([0.5, 0.99])
  config = solvers.SolverConfig(method=method, rel_tol=0.0, abs_tol=1e-12,
                                max_iter=7, eval_max_iter=9)
  h0 = jnp.zeros_like(inputs['b'])
  _, stats = solvers.solve(linear_map, h0, params, inputs, config=config)
  assert not np.any(np.asarray(stats.converged))
  np.testing.assert_array_equal(stats.iterations, [7, 7])
  assert np.all(np.asarray(stats.abs_residual) > 1e-12)
  _, stats = solvers.solve(linear_map, h0, params, inputs, config=config,
                           training=False)
  np.testing.assert_array_equal(stats.iterations, [9, 9])


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_only_our_cap_and_tolerance_stop_the_loop(method):
  # jaxopt's own maxiter (default 100) and tol (1e-5) configure its run()
  # loop, which is never used: a cap of 130 is reached, and a tolerance
  # looser than jaxopt's stops the loop on its own.
  params, inputs = make_problem([0.999])
  h0 = jnp.zeros_like(inputs['b'])
  config = solvers.SolverConfig(method=method, rel_tol=0.0, abs_tol=0.0,
                                max_iter=130, ridge=1e-12)
  _, stats = solvers.solve(linear_map, h0, params, inputs, config=config)
  np.testing.assert_array_equal(stats.iterations, [130])
  loose = solvers.SolverConfig(method=method, rel_tol=0.0, abs_tol=1e-2,
                               max_iter=130)
  _, stats = solvers.solve(linear_map, h0, params, inputs, config=loose)
  assert bool(stats.converged[0]) and float(stats.abs_residual[0]) <= 1e-2
  assert float(stats.abs_residual[0]) > 1e-5


def _loss(params, inputs, backward, config, f=tanh_map):
  h0 = jnp.zeros_like(inputs['b'])
  h, _ = solvers.solve(f, h0, params, inputs, config=config, backward=backward)
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
    g_imp = jax.grad(_loss, argnums=(0, 1))(params, inputs, implicit, TIGHT)
    g_unr = jax.grad(_loss, argnums=(0, 1))(params, inputs, unrolled, TIGHT)
    # Stated tolerance: 1e-7 relative to the gradient's scale (float64).
    for a, b in zip(jax.tree_util.tree_leaves(g_imp),
                    jax.tree_util.tree_leaves(g_unr)):
      np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    # Central finite differences along a random direction of W.
    d = jax.random.normal(jax.random.PRNGKey(3), (N, N))
    eps = 1e-5
    loss = lambda w: _loss({'W': w}, inputs, implicit, TIGHT)
    fd = (loss(params['W'] + eps * d) - loss(params['W'] - eps * d)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(g_imp[0]['W'], d), fd, rtol=1e-6)


def test_phantom_gradient_matches_its_formula():
  with jax.enable_x64(True):
    params, inputs = make_problem([0.5, 0.7])
    h0 = jnp.zeros_like(inputs['b'])
    h_star, _ = solvers.solve(tanh_map, h0, params, inputs, config=TIGHT)
    weights = jnp.arange(1, N + 1)
    outer = lambda h: jnp.sum(jnp.sin(h) * weights)
    for steps, lam in [(1, 1.0), (3, 0.5), (4, 1.0)]:
      backward = solvers.BackwardConfig(mode='phantom', phantom_steps=steps,
                                        phantom_damping=lam)
      got = jax.grad(_loss)(params, inputs, backward, TIGHT)

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
    np.testing.assert_allclose(jax.grad(_loss)(params, inputs, jfb, TIGHT)['W'],
                               vjp(v)[0]['W'], rtol=1e-8)


def test_phantom_forward_value_is_the_fixed_point():
  params, inputs = make_problem([0.5, 0.7])
  config = solvers.SolverConfig(rel_tol=1e-6, max_iter=500)
  h0 = jnp.zeros_like(inputs['b'])
  h_imp, _ = solvers.solve(tanh_map, h0, params, inputs, config=config,
                           backward=solvers.BackwardConfig(mode='implicit'))
  h_ph, _ = solvers.solve(tanh_map, h0, params, inputs, config=config,
                          backward=solvers.BackwardConfig(mode='phantom'))
  np.testing.assert_allclose(h_ph, h_imp, atol=1e-5)


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_the_recorded_trajectory_is_the_solver_iterates(method):
  params, inputs = make_problem([0.3, 0.9])
  config = solvers.SolverConfig(method=method, rel_tol=1e-3, max_iter=30)
  h0 = jnp.zeros_like(inputs['b'])
  h, stats, traj = solvers.solve(tanh_map, h0, params, inputs, config=config,
                                 record_trajectory=True)
  assert traj.shape == (2, 30, N)
  h_plain, stats_plain = solvers.solve(tanh_map, h0, params, inputs,
                                       config=config)
  np.testing.assert_array_equal(stats.iterations, stats_plain.iterations)
  np.testing.assert_allclose(h, h_plain, atol=1e-6)
  for b, k in enumerate(np.asarray(stats.iterations)):
    one = jax.tree_util.tree_map(lambda x, b=b: x[b], inputs)
    # Each example alone records the same; slots after its last are 0.
    _, _, alone = solvers.forward_trajectory(tanh_map, h0[b], params, one,
                                             config, 30)
    np.testing.assert_allclose(traj[b], alone, atol=1e-6)
    assert not np.any(np.asarray(traj[b, k:]))
    if method == 'fixed_point':
      # Plain iteration: iterate i is f applied i + 1 times to h0.
      x = h0[b]
      for i in range(k):
        x = tanh_map(x, params, one)
        np.testing.assert_allclose(traj[b, i], x, atol=1e-6)


def test_recording_the_trajectory_needs_the_phantom_mode():
  params, inputs = make_problem([0.5])
  h0 = jnp.zeros_like(inputs['b'])
  with pytest.raises(ValueError, match='phantom'):
    solvers.solve(tanh_map, h0, params, inputs, record_trajectory=True,
                  backward=solvers.BackwardConfig(mode='implicit'))


def test_solve_jits_and_unrolled_stats():
  params, inputs = make_problem([0.5, 0.9])
  h0 = jnp.zeros_like(inputs['b'])
  backward = solvers.BackwardConfig(mode='unrolled', unroll_steps=5)
  _, stats = jax.jit(functools.partial(
      solvers.solve, tanh_map, backward=backward))(h0, params, inputs)
  np.testing.assert_array_equal(stats.iterations, [5, 5])


def test_hutchinson_estimates_jacobian_frobenius_norm():
  with jax.enable_x64(True):
    params, inputs = make_problem([0.7])
    one = jax.tree_util.tree_map(lambda x: x[0], inputs)
    h = jnp.linspace(-1, 1, N)
    fun = lambda x: tanh_map(x, params, one)
    exact = jnp.sum(jnp.square(jax.jacfwd(fun)(h)))
    est = solvers.jacobian_frobenius_sq(fun, h, jax.random.PRNGKey(0),
                                        num_samples=4000)
    # 4000 Gaussian probes: relative standard error about sqrt(2/4000) ~ 2%.
    np.testing.assert_allclose(est, exact, rtol=0.1)
    # And it is differentiable in the parameters the function closes over.
    g = jax.grad(lambda w: solvers.jacobian_frobenius_sq(
        lambda x: tanh_map(x, {'W': w}, one), h, jax.random.PRNGKey(0), 8))(
            params['W'])
    assert float(jnp.linalg.norm(g)) > 0


@pytest.mark.parametrize('bad', [
    dict(method='newton'), dict(max_iter=0), dict(rel_tol=-1.0),
    dict(history_size=1),
])
def test_bad_solver_config_is_refused(bad):
  with pytest.raises(ValueError, match='|'.join(bad)):
    solvers.SolverConfig(**bad)


@pytest.mark.parametrize('bad', [
    dict(mode='exact'), dict(linear_solver='lu'), dict(phantom_steps=0),
    dict(phantom_damping=1.5),
])
def test_bad_backward_config_is_refused(bad):
  with pytest.raises(ValueError):
    solvers.BackwardConfig(**bad)
