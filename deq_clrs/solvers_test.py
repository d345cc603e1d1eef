"""Tests of the fixed-point solvers: convergence, per-example stopping, caps,
gradients of every backward mode, and the Jacobian regulariser."""

import dataclasses
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


# --- anderson_growing against torchdeq's Anderson, re-implemented in NumPy ---


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
    h, stats, traj = solvers.solve(f, h0, params, inputs, config=config,
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
    h, stats = solvers.solve(linear_map, h0, params, inputs, config=config)
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
    h, stats = solvers.solve(f, h0, params, inputs, config=best,
                             training=False)
    np.testing.assert_allclose(h, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.returned, step)
    np.testing.assert_allclose(stats.rel_residual, lowest, rtol=1e-6)
    # Non-convergence stays reported: not converged, every evaluation spent.
    assert not np.any(np.asarray(stats.converged))
    np.testing.assert_array_equal(stats.iterations, [cap] * 4)
    # Without return_best: the last evaluation.
    last = dataclasses.replace(best, return_best=False)
    h_last, stats_last = solvers.solve(f, h0, params, inputs, config=last,
                                       training=False)
    np.testing.assert_allclose(h_last, outputs[cap - 1], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(stats_last.returned, [cap] * 4)
    assert np.all(np.asarray(stats_last.rel_residual)
                  >= np.asarray(stats.rel_residual))


def test_return_best_changes_nothing_for_converged_graphs():
  params, inputs = make_problem([0.3, 0.6, 0.9])
  h0 = jnp.zeros_like(inputs['b'])
  for method in solvers.FORWARD_METHODS:
    config = solvers.SolverConfig(method=method, rel_tol=1e-3, max_iter=50)
    h, stats = solvers.solve(tanh_map, h0, params, inputs, config=config)
    h_b, stats_b = solvers.solve(
        tanh_map, h0, params, inputs,
        config=dataclasses.replace(config, return_best=True))
    np.testing.assert_array_equal(h, h_b)
    for a, b in zip(stats, stats_b):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(stats.returned, stats.iterations)


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
    _, stats = solvers.solve(f, h0, params, inputs, config=config)
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
      solvers.solve, tanh_map, config=config, training=False))(
          h0, params, inputs)
  assert len(set(np.asarray(stats.iterations).tolist())) > 1, stats
  for i in range(3):
    one = jax.tree_util.tree_map(lambda x, i=i: x[i:i + 1], inputs)
    hi, si = solvers.solve(tanh_map, h0[i:i + 1], params, one, config=config,
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
    h_star, _ = solvers.solve(tanh_map, h0, params, inputs, config=config,
                              training=False)
    weights = jnp.arange(1, N + 1)
    v = jnp.cos(jax.vmap(tanh_map, (0, None, 0))(h_star, params, inputs))
    _, vjp = jax.vjp(
        lambda p: jax.vmap(tanh_map, (0, None, 0))(h_star, p, inputs), params)
    got = jax.grad(_loss)(params, inputs, solvers.BackwardConfig(), config)
    np.testing.assert_allclose(got['W'], vjp(v * weights)[0]['W'],
                               rtol=1e-8)
    # And implicit differentiation around it still works.
    tight = dataclasses.replace(config, rel_tol=1e-12, max_iter=400,
                                ridge=1e-14)
    imp = jax.grad(_loss)(params, inputs, solvers.BackwardConfig(
        mode='implicit', linear_tol=1e-12, linear_max_iter=500), tight)
    unr = jax.grad(_loss)(params, inputs, solvers.BackwardConfig(
        mode='unrolled', unroll_steps=300), tight)
    np.testing.assert_allclose(imp['W'], unr['W'], rtol=1e-7, atol=1e-9)


def test_growing_anderson_on_a_matrix_state_is_the_flat_solve():
  # A graph's state is [N, H]: the history's inner products and mixtures
  # run over every axis of a leaf, as over the flattened vector.
  params, inputs = make_problem([0.3, 0.9, 0.99])
  h0 = jnp.zeros_like(inputs['b'])
  config = solvers.SolverConfig(method='anderson_growing', rel_tol=1e-4,
                                eval_max_iter=30, return_best=True)
  flat, stats = solvers.solve(tanh_map, h0, params, inputs, config=config,
                              training=False)

  def matrix_map(h, params, inputs):
    return tanh_map(h.reshape(N), params, inputs).reshape(N // 2, 2)

  grid, grid_stats = solvers.solve(matrix_map, h0.reshape(3, N // 2, 2),
                                   params, inputs, config=config,
                                   training=False)
  np.testing.assert_allclose(grid.reshape(3, N), flat, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(grid_stats.iterations, stats.iterations)
