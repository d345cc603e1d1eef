"""Tests of the per-example forward solve: convergence, per-example stopping,
caps, tolerances, the recorded trajectory, ``return_best`` and the configs'
checks. The fixed-point problems here are shared with ``gradients_test`` and
``anderson_test``."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import gradients
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
        gradients.solve, linear_map, config=config))(h0, params, inputs)
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
  _, stats = gradients.solve(tanh_map, h0, params, inputs, config=config)
  its = np.asarray(stats.iterations)
  assert np.all(np.asarray(stats.converged))
  assert its[0] < its[2], its
  assert len(set(its.tolist())) >= 2, its
  assert np.all(np.asarray(stats.rel_residual) <= 1e-4)


def test_batch_solve_equals_solving_each_example_alone():
  params, inputs = make_problem([0.2, 0.9])
  config = solvers.SolverConfig(method='anderson', rel_tol=1e-3, max_iter=200)
  h0 = jnp.zeros_like(inputs['b'])
  h, stats = gradients.solve(tanh_map, h0, params, inputs, config=config)
  for i in range(2):
    one = jax.tree_util.tree_map(lambda x, i=i: x[i:i + 1], inputs)
    hi, si = gradients.solve(tanh_map, h0[i:i + 1], params, one, config=config)
    np.testing.assert_allclose(hi[0], h[i], rtol=1e-5, atol=1e-6)
    assert int(si.iterations[0]) == int(stats.iterations[i])


def test_relative_tolerance_is_relative():
  # Same map, inputs scaled by 1000: the relative criterion needs the same
  # number of iterations, the absolute one needs more.
  params, inputs = make_problem([0.8, 0.8])
  inputs['b'] = inputs['b'].at[1].multiply(1000.0)
  h0 = jnp.zeros_like(inputs['b'])
  rel = solvers.SolverConfig(method='fixed_point', rel_tol=1e-3, max_iter=500)
  _, stats = gradients.solve(linear_map, h0, params, inputs, config=rel)
  assert int(stats.iterations[0]) == int(stats.iterations[1])
  absolute = solvers.SolverConfig(method='fixed_point', rel_tol=0.0,
                                  abs_tol=1e-3, max_iter=500)
  _, stats = gradients.solve(linear_map, h0, params, inputs, config=absolute)
  assert int(stats.iterations[0]) < int(stats.iterations[1])


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_hitting_the_cap_is_reported(method):
  params, inputs = make_problem([0.5, 0.99])
  config = solvers.SolverConfig(method=method, rel_tol=0.0, abs_tol=1e-12,
                                max_iter=7, eval_max_iter=9)
  h0 = jnp.zeros_like(inputs['b'])
  _, stats = gradients.solve(linear_map, h0, params, inputs, config=config)
  assert not np.any(np.asarray(stats.converged))
  np.testing.assert_array_equal(stats.iterations, [7, 7])
  assert np.all(np.asarray(stats.abs_residual) > 1e-12)
  _, stats = gradients.solve(linear_map, h0, params, inputs, config=config,
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
  _, stats = gradients.solve(linear_map, h0, params, inputs, config=config)
  np.testing.assert_array_equal(stats.iterations, [130])
  loose = solvers.SolverConfig(method=method, rel_tol=0.0, abs_tol=1e-2,
                               max_iter=130)
  _, stats = gradients.solve(linear_map, h0, params, inputs, config=loose)
  assert bool(stats.converged[0]) and float(stats.abs_residual[0]) <= 1e-2
  assert float(stats.abs_residual[0]) > 1e-5


@pytest.mark.parametrize('method', solvers.FORWARD_METHODS)
def test_the_recorded_trajectory_is_the_solver_iterates(method):
  params, inputs = make_problem([0.3, 0.9])
  config = solvers.SolverConfig(method=method, rel_tol=1e-3, max_iter=30)
  h0 = jnp.zeros_like(inputs['b'])
  h, stats, traj = gradients.solve(tanh_map, h0, params, inputs, config=config,
                                 record_trajectory=True)
  assert traj.shape == (2, 30, N)
  h_plain, stats_plain = gradients.solve(tanh_map, h0, params, inputs,
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


def test_return_best_changes_nothing_for_converged_graphs():
  params, inputs = make_problem([0.3, 0.6, 0.9])
  h0 = jnp.zeros_like(inputs['b'])
  for method in solvers.FORWARD_METHODS:
    config = solvers.SolverConfig(method=method, rel_tol=1e-3, max_iter=50)
    h, stats = gradients.solve(tanh_map, h0, params, inputs, config=config)
    h_b, stats_b = gradients.solve(
        tanh_map, h0, params, inputs,
        config=dataclasses.replace(config, return_best=True))
    np.testing.assert_array_equal(h, h_b)
    for a, b in zip(stats, stats_b):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(stats.returned, stats.iterations)


@pytest.mark.parametrize('bad', [
    dict(method='newton'), dict(max_iter=0), dict(rel_tol=-1.0),
    dict(history_size=1), dict(method='anderson_growing', history_size=1),
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
