"""Tests of the equilibrium layer on small random graphs."""

import dataclasses

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import cells
from deq_clrs import deq
from deq_clrs import gradients
from deq_clrs import solvers

B, N, F, D = 2, 5, 4, 4


class ContractiveGraphCell(nn.Module):
  """H' = tanh(U W_u + E-gated messages + gamma * mean_s(H_s W_h / ||W_h||)).

  With mean aggregation over at most N senders, ||M||_2 <= sqrt(N), so
  gamma * sqrt(N) < 1 makes the map a contraction in H for any parameters.
  """
  out_size: int
  gamma: float = 0.3

  @nn.compact
  def __call__(self, node_fts, edge_fts, graph_fts, adj_mat, hidden):
    w_h = self.param('w_h', nn.initializers.normal(1.0),
                     (self.out_size, self.out_size))
    w_h = w_h / jnp.linalg.norm(w_h, 2)
    msgs = (hidden @ w_h)[:, :, None, :] * jax.nn.sigmoid(
        nn.Dense(self.out_size, name='edge_gate')(edge_fts))
    agg = cells.aggregate(msgs, adj_mat, 'mean')
    pre = (nn.Dense(self.out_size, name='w_u')(node_fts)
           + nn.Dense(self.out_size, name='w_g')(graph_fts)[:, None]
           + self.gamma * agg)
    return jnp.tanh(pre)


def random_graph(seed=0, dtype=jnp.float32):
  ks = jax.random.split(jax.random.PRNGKey(seed), 4)
  adj = (jax.random.uniform(ks[3], (B, N, N)) < 0.5).astype(dtype)
  adj = jnp.maximum(adj, jnp.eye(N, dtype=dtype))
  return deq.GraphInputs(
      node_fts=jax.random.normal(ks[0], (B, N, F), dtype),
      edge_fts=jax.random.normal(ks[1], (B, N, N, F), dtype),
      graph_fts=jax.random.normal(ks[2], (B, F), dtype),
      adj_mat=adj)


def init_params(cell, graph):
  h0 = jnp.zeros(graph.node_fts.shape[:2] + (cell.out_size,),
                 graph.node_fts.dtype)
  params = cell.init(jax.random.PRNGKey(1), *graph, h0)['params']
  # Flax creates float32 parameters; the float64 tests need float64 ones.
  return jax.tree_util.tree_map(lambda x: x.astype(h0.dtype), params)


TIGHT = solvers.SolverConfig(method='anderson', rel_tol=0.0, abs_tol=1e-12,
                             max_iter=3000, eval_max_iter=3000, ridge=1e-14)


def layer_loss(params, graph, cell, backward, solver=TIGHT):
  config = deq.DEQConfig(solver=solver, backward=backward, noise_std=0.0,
                         jac_reg_weight=0.0)
  h, _ = deq.equilibrium(cell, params, graph, config=config, training=True)
  return jnp.sum(jnp.cos(h) * jnp.arange(h.size).reshape(h.shape) / h.size)


# Tens of seconds per adjoint solver here: with --runslow (gradients_test
# covers all three on a small map, and the gated cell's implicit gradient is
# checked against unrolling below, in the default run).
@pytest.mark.slow
@pytest.mark.parametrize('linear_solver', sorted(solvers.LINEAR_SOLVERS))
def test_implicit_gradients_on_a_contractive_graph_cell(linear_solver):
  with jax.enable_x64(True):
    graph = random_graph(dtype=jnp.float64)
    cell = ContractiveGraphCell(out_size=D)
    params = init_params(cell, graph)
    implicit = solvers.BackwardConfig(mode='implicit',
                                      linear_solver=linear_solver,
                                      linear_tol=1e-12, linear_max_iter=500)
    unrolled = solvers.BackwardConfig(mode='unrolled', unroll_steps=200)
    g_imp = jax.grad(layer_loss)(params, graph, cell, implicit)
    g_unr = jax.grad(layer_loss)(params, graph, cell, unrolled)
    flat_imp, _ = jax.flatten_util.ravel_pytree(g_imp)
    flat_unr, _ = jax.flatten_util.ravel_pytree(g_unr)
    # Stated tolerance: 1e-7 relative (float64, both solves to 1e-12).
    np.testing.assert_allclose(flat_imp, flat_unr, rtol=1e-7, atol=1e-10)
    # Finite differences along a random direction in parameter space; the
    # inputs (edge features) get a gradient too.
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    d = jax.random.normal(jax.random.PRNGKey(7), flat.shape, flat.dtype)
    loss = lambda x: layer_loss(unravel(x), graph, cell, implicit)
    eps = 1e-5
    fd = (loss(flat + eps * d) - loss(flat - eps * d)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(flat_imp, d), fd, rtol=1e-6)
    g_edge = jax.grad(lambda e: layer_loss(
        params, graph._replace(edge_fts=e), cell, implicit))(graph.edge_fts)
    de = jax.random.normal(jax.random.PRNGKey(8), g_edge.shape, g_edge.dtype)
    loss_e = lambda e: layer_loss(params, graph._replace(edge_fts=e), cell,
                                  implicit)
    fd = (loss_e(graph.edge_fts + eps * de)
          - loss_e(graph.edge_fts - eps * de)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(g_edge, de), fd, rtol=1e-6)


def test_implicit_gradient_of_dears_gated_cell_matches_unrolled():
  # The real cell is not contractive by construction; with an open gate
  # (bias 0) plain iteration converges at initialisation, to 1e-11 here.
  with jax.enable_x64(True):
    graph = random_graph(seed=2, dtype=jnp.float64)
    cell = cells.CellConfig(gate_bias=0.0).build(D)
    params = init_params(cell, graph)
    solver = solvers.SolverConfig(method='fixed_point', rel_tol=0.0,
                                  abs_tol=1e-11, max_iter=3000)
    implicit = solvers.BackwardConfig(mode='implicit', linear_solver='gmres',
                                      linear_tol=1e-12, linear_max_iter=500)
    config = deq.DEQConfig(solver=solver, backward=implicit, noise_std=0.0,
                           jac_reg_weight=0.0)
    _, stats = deq.equilibrium(cell, params, graph, config=config,
                               training=True)
    assert bool(jnp.all(stats.solver.converged))
    unrolled = solvers.BackwardConfig(mode='unrolled',
                                      unroll_steps=int(stats.solver.iterations
                                                       .max()) + 200)
    g_imp = jax.grad(layer_loss)(params, graph, cell, implicit, solver)
    g_unr = jax.grad(layer_loss)(params, graph, cell, unrolled, solver)
    flat_imp, _ = jax.flatten_util.ravel_pytree(g_imp)
    flat_unr, _ = jax.flatten_util.ravel_pytree(g_unr)
    np.testing.assert_allclose(flat_imp, flat_unr, rtol=1e-6, atol=1e-9)


def test_equilibrium_is_a_fixed_point_of_the_cell():
  graph = random_graph()
  cell = cells.GatedMPNNCell(out_size=D)
  params = init_params(cell, graph)
  tol = 1e-3
  config = deq.DEQConfig(
      solver=solvers.SolverConfig(method='fixed_point', rel_tol=tol,
                                  max_iter=2000, eval_max_iter=2000),
      noise_std=0.0)
  h, stats = deq.equilibrium(cell, params, graph, config=config,
                             training=False)
  assert h.shape == (B, N, D)
  assert stats.solver.iterations.shape == (B,)
  assert bool(jnp.all(stats.solver.converged))
  # The stats describe the last evaluation f(x) - x; the layer returns f(x),
  # one more step of a contraction, so its own residual is no larger.
  again = cell.apply({'params': params}, *graph, h)
  rel = (jnp.linalg.norm((again - h).reshape(B, -1), axis=1)
         / jnp.linalg.norm(again.reshape(B, -1), axis=1))
  assert bool(jnp.all(rel <= tol))
  assert bool(jnp.all(rel <= stats.solver.rel_residual * 1.01))


def test_noise_modes():
  graph = random_graph()
  cell = cells.GatedMPNNCell(out_size=D)
  params = init_params(cell, graph)
  key, other = jax.random.PRNGKey(0), jax.random.PRNGKey(1)

  def run(training, k, **options):
    config = deq.DEQConfig(**{'noise_std': 0.1, **options})
    return deq.equilibrium(cell, params, graph, config=config,
                           training=training, rng=k)[0]

  with pytest.raises(ValueError, match='needs an rng'):
    run(True, None)
  assert not np.allclose(run(True, key), run(True, other))
  # The reference adds the noise at evaluation too (the default) ...
  assert not np.allclose(run(False, key), run(False, other))
  # ... which noise_in_eval=False turns off.
  np.testing.assert_array_equal(run(False, key, noise_in_eval=False),
                                run(False, other, noise_in_eval=False))
  np.testing.assert_array_equal(run(False, key, noise_in_eval=False),
                                run(False, key, noise_std=0.0))


@pytest.mark.parametrize('per_call', [True, False])
def test_noise_per_call_draws_fresh_noise_on_every_map_call(per_call):
  graph = random_graph()
  cell = cells.GatedMPNNCell(out_size=D)
  params = init_params(cell, graph)
  std, steps, key = 0.05, 3, jax.random.PRNGKey(3)
  config = deq.DEQConfig(
      noise_std=std, noise_per_call=per_call, jac_reg_weight=0.0,
      backward=solvers.BackwardConfig(mode='unrolled', unroll_steps=steps))
  got, _ = deq.equilibrium(cell, params, graph, config=config, training=True,
                           rng=key)
  # By hand: h <- P(h) + noise_i from h = 0, with call i of graph b drawing
  # std * normal(fold_in(key_b, i)) (per call) or one draw for the batch.
  noise_key, _ = jax.random.split(key)
  graph_keys = jax.random.split(noise_key, B)
  once = std * jax.random.normal(noise_key, (B, N, D))
  h = jnp.zeros((B, N, D))
  for i in range(steps):
    if per_call:
      noise = jnp.stack([std * jax.random.normal(
          jax.random.fold_in(graph_keys[b], i), (N, D)) for b in range(B)])
    else:
      noise = once
    h = cell.apply({'params': params}, *graph, h) + noise
  np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('phantom_in_eval', [True, False])
def test_phantom_step_at_evaluation_is_an_option(phantom_in_eval):
  graph = random_graph()
  cell = cells.GatedMPNNCell(out_size=D)
  params = init_params(cell, graph)
  solver = solvers.SolverConfig(method='fixed_point', rel_tol=0.1,
                                eval_max_iter=50)
  config = deq.DEQConfig(
      solver=solver, noise_std=0.0,
      backward=solvers.BackwardConfig(phantom_in_eval=phantom_in_eval))
  got, _ = deq.equilibrium(cell, params, graph, config=config,
                           training=False)
  f = deq.single_graph_map(cell)
  zeros = jnp.zeros((B, N, D))
  h_star, _ = jax.vmap(lambda h0, x: solvers.forward_solve(
      f, h0, params, x, solver, 50))(zeros, (graph, zeros, zeros[:, 0, :2]))
  want = (cell.apply({'params': params}, *graph, h_star) if phantom_in_eval
          else h_star)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # The solver stopped early, so the two choices do differ.
  assert not np.allclose(cell.apply({'params': params}, *graph, h_star),
                         h_star, atol=1e-3)


def test_attach_loss_gradient_adds_the_regulariser_gradient():
  def parts(theta):
    x = jnp.sin(theta)
    r = jnp.sum(theta ** 2)
    return x, r

  theta = jnp.array([0.3, -1.2, 2.0])
  task = lambda x: jnp.sum(x * jnp.array([1.0, 2.0, 3.0]))
  got = jax.grad(lambda t: task(deq.attach_loss_gradient(*parts(t), 0.25)))(
      theta)
  want = jax.grad(lambda t: task(parts(t)[0]) + 0.25 * parts(t)[1])(theta)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # The forward value is untouched.
  np.testing.assert_allclose(deq.attach_loss_gradient(*parts(theta), 0.25),
                             parts(theta)[0])


@pytest.mark.slow
def test_jacobian_regulariser_reaches_the_parameters():
  graph = random_graph()
  cell = cells.GatedMPNNCell(out_size=D)
  params = init_params(cell, graph)
  solver = solvers.SolverConfig(rel_tol=1e-4, max_iter=200)
  weight = 10.0
  key = jax.random.PRNGKey(4)

  def loss(p, w):
    config = deq.DEQConfig(solver=solver, noise_std=0.0, jac_reg_weight=w,
                           jac_reg_samples=2)
    h, _ = deq.equilibrium(cell, p, graph, config=config, training=True,
                           rng=key)
    return jnp.sum(h)

  config = deq.DEQConfig(solver=solver, noise_std=0.0, jac_reg_weight=weight,
                         jac_reg_samples=2)
  h_star, stats = deq.equilibrium(cell, params, graph, config=config,
                                  training=True, rng=key)
  assert bool(jnp.all(stats.jac_frobenius > 0))

  # What the layer should add: weight * mean over graphs of the Hutchinson
  # estimate at the stopped fixed point, with the layer's own keys, on
  # torchdeq's scale (divided by the N * D elements of a graph's state).
  _, jac_key = jax.random.split(key)
  keys = jax.random.split(jac_key, B)
  f = deq.single_graph_map(cell)
  zeros = jnp.zeros((N, D))

  def reg(p):
    per_graph = [gradients.jacobian_frobenius_sq(
        lambda x, b=b: f(x, p, (jax.tree_util.tree_map(lambda a, b=b: a[b],
                                                       graph), zeros, None)),
        jax.lax.stop_gradient(h_star[b]), keys[b], 2) for b in range(B)]
    return weight * sum(per_graph) / B / (N * D)

  np.testing.assert_allclose(reg(params) / weight,
                             jnp.mean(stats.jac_frobenius), rtol=1e-5)
  g_with = jax.grad(loss)(params, weight)
  g_without = jax.grad(loss)(params, 0.0)
  g_reg = jax.grad(reg)(params)
  diff = jax.tree_util.tree_map(jnp.subtract, g_with, g_without)
  for a, b in zip(jax.tree_util.tree_leaves(diff),
                  jax.tree_util.tree_leaves(g_reg)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _iterates(cell, params, graph, count):
  """``P^1(0) .. P^count(0)``: [count, B, N, D]."""
  h = jnp.zeros(graph.node_fts.shape[:2] + (cell.out_size,))
  out = []
  for _ in range(count):
    h = cell.apply({'params': params}, *graph, h)
    out.append(h)
  return jnp.stack(out)


def test_trajectory_samples_are_later_iterates_with_gradients():
  graph = random_graph()
  cell = ContractiveGraphCell(out_size=D)
  params = init_params(cell, graph)
  config = deq.DEQConfig(
      solver=solvers.SolverConfig(method='fixed_point', rel_tol=1e-6,
                                  max_iter=40),
      noise_std=0.0, jac_reg_weight=0.0, trajectory_samples=3)
  h, stats, samples = deq.equilibrium_and_samples(
      cell, params, graph, config=config, training=True,
      rng=jax.random.PRNGKey(3))
  assert samples.states.shape == (B, 3, N, D)
  iterations = np.asarray(stats.solver.iterations)
  plain = _iterates(cell, params, graph, int(iterations.max()) + 1)
  for b in range(B):
    valid = np.asarray(samples.valid[b])
    want = min(3, iterations[b] - 1, max(1, (iterations[b] - 2) // 10))
    assert valid.sum() == want
    # The map applied to iterate i (i = 0 .. K - 2) is iterate i + 1:
    # P^j(0) with j in 2 .. K, in solver order.
    found = []
    for s in np.flatnonzero(valid):
      dist = jnp.abs(plain[:, b] - samples.states[b, s]).max(axis=(1, 2))
      found.append(int(jnp.argmin(dist)) + 1)
      assert float(dist.min()) < 1e-5
    assert found == sorted(set(found))
    assert all(2 <= j <= iterations[b] for j in found)
  # The samples carry gradients to the parameters; without samples the
  # layer returns none.
  grad = jax.grad(lambda p: jnp.sum(deq.equilibrium_and_samples(
      cell, p, graph, config=config, training=True,
      rng=jax.random.PRNGKey(3))[2].states))(params)
  assert sum(float(jnp.abs(g).sum())
             for g in jax.tree_util.tree_leaves(grad)) > 0
  off = dataclasses.replace(config, trajectory_samples=0)
  assert deq.equilibrium_and_samples(cell, params, graph, config=off,
                                     training=True)[2] is None
  # At evaluation there are none either.
  assert deq.equilibrium_and_samples(cell, params, graph, config=config,
                                     training=False)[2] is None


def test_trajectory_samples_need_the_phantom_gradient():
  with pytest.raises(ValueError, match='phantom'):
    deq.DEQConfig(trajectory_samples=1,
                  backward=solvers.BackwardConfig(mode='implicit'))


def test_rollout_is_the_cell_applied_step_by_step():
  graph = random_graph()
  cell = cells.GatedMPNNCell(out_size=D)
  params = init_params(cell, graph)
  states = deq.rollout(cell, params, graph, 4)
  assert states.shape == (B, 4, N, D)
  np.testing.assert_allclose(states, jnp.moveaxis(
      _iterates(cell, params, graph, 4), 0, 1), atol=1e-6)
  # The module keeps the equilibrium module's parameter layout.
  module = deq.RolloutModule(cell_config=cells.CellConfig(), out_size=D,
                             steps=2)
  variables = module.init(jax.random.PRNGKey(0), *graph)
  layer = deq.EquilibriumModule(cell_config=cells.CellConfig(), out_size=D,
                                config=deq.DEQConfig(noise_std=0.0),
                                training=False)
  assert (jax.tree_util.tree_structure(variables) == jax.tree_util
          .tree_structure(layer.init(jax.random.PRNGKey(0), *graph)))


@pytest.mark.parametrize('mode', ['phantom', 'implicit'])
def test_bfloat16_cell_keeps_a_float32_solve_and_close_gradients(mode):
  """``compute_dtype='bfloat16'``: the solver's state stays float32 and the
  equilibrium and the gradients stay within 5% (relative norm) of the
  float32 cell's with the same parameters (measured: 0.4% and 1%)."""
  graph = random_graph(seed=3)
  c32 = cells.CellConfig().build(D)
  c16 = cells.CellConfig(compute_dtype='bfloat16').build(D)
  params = init_params(c32, graph)
  solver = solvers.SolverConfig(method='anderson', rel_tol=1e-3,
                                max_iter=100, eval_max_iter=100)
  backward = solvers.BackwardConfig(mode=mode)
  config = deq.DEQConfig(solver=solver, backward=backward, noise_std=0.0,
                         jac_reg_weight=0.0)
  h32, _ = deq.equilibrium(c32, params, graph, config=config, training=False)
  h16, stats = deq.equilibrium(c16, params, graph, config=config,
                               training=False)
  assert h16.dtype == jnp.float32
  assert bool(jnp.all(stats.solver.converged))
  assert float(jnp.linalg.norm(h16 - h32) / jnp.linalg.norm(h32)) < 0.05

  def flat_grad(cell):
    grad = jax.grad(layer_loss)(params, graph, cell, backward, solver)
    return jax.flatten_util.ravel_pytree(grad)[0]

  g32, g16 = flat_grad(c32), flat_grad(c16)
  assert g16.dtype == jnp.float32
  assert float(jnp.linalg.norm(g16 - g32) / jnp.linalg.norm(g32)) < 0.05
