"""Tests of the exact oracle cells against CLRS's own outputs and hints.

Graphs come from CLRS's samplers: at the CLRS default edge probability (dense
graphs, few rounds) and at a sparse one (long shortest paths, unreachable
nodes, and more rounds than Anderson's history, so that Anderson actually
extrapolates).
"""

from __future__ import annotations

import functools
import types

import clrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import deq
from deq_clrs import oracles
from deq_clrs import solvers
from deq_clrs.integration import oracle_data
from experiments import oracle_scoring as oracle_cmd

ALGORITHMS = ('bfs', 'bellman_ford')
METHODS = ('fixed_point', 'anderson')
NUM_GRAPHS = 8
HISTORY = 6


@functools.lru_cache(maxsize=None)
def feedback(algorithm: str, nodes: int, sparse: bool, seed: int = 0):
  p = (oracle_cmd.sparse_p(nodes),) if sparse else ()
  return oracle_cmd.sample(algorithm, nodes, NUM_GRAPHS, seed, p)


@functools.lru_cache(maxsize=None)
def solved(algorithm, nodes, sparse, method, dtype=np.float64, fallback=False,
           max_iter=None):
  fb = feedback(algorithm, nodes, sparse)
  graph = oracle_data.oracle_inputs(algorithm, fb.features.inputs, dtype=dtype)
  kwargs = {'history_size': HISTORY} if method == 'anderson' else {}
  config = oracles.oracle_solver_config(method, nodes, dtype=dtype,
                                        max_iter=max_iter, **kwargs)
  run = oracles.run_oracle(algorithm, graph, config, fallback=fallback)
  return fb, graph, config, run


def lengths(fb) -> np.ndarray:
  return np.asarray(fb.features.lengths).astype(int)


def clrs_score(fb, pi) -> float:
  pred = {'pi': oracle_data.pi_datapoint(pi)}
  return clrs.evaluate(fb.outputs, pred)['score']


def assert_exact(fb, graph, run, algorithm, rows=slice(None)):
  """The fixed point and the decoded pointers are CLRS's, on ``rows``."""
  ref = oracle_data.reference_fixed_point(algorithm, fb, graph)
  np.testing.assert_allclose(run.h_star[rows], ref.h[rows], rtol=1e-12,
                             atol=0)
  truth = np.asarray(fb.outputs[0].data)
  np.testing.assert_array_equal(run.pi[rows], truth[rows])


# --- Solvers reach the fixed point; decoded outputs are CLRS's. ---


@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize('nodes', [16, 64])
@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_fixed_point_iteration_is_exact(algorithm, nodes, sparse):
  fb, graph, _, run = solved(algorithm, nodes, sparse, 'fixed_point')
  assert np.all(run.stats.converged)
  np.testing.assert_array_equal(run.stats.abs_residual, 0.0)
  assert clrs_score(fb, run.pi) == 1.0
  assert_exact(fb, graph, run, algorithm)


@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize('nodes', [16, 64])
@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_fixed_point_iterations_are_clrs_rounds_plus_one(algorithm, nodes,
                                                         sparse):
  # After k evaluations from 0 the state holds the best walks of <= k - 1
  # edges (CLRS's state after k - 1 rounds); CLRS's `lengths` L counts its
  # rounds including the last one that changes nothing. So exactly L + 1:
  # f(0) = s (CLRS's initialisation), L - 1 rounds that change something,
  # and one evaluation that confirms the fixed point.
  fb, _, _, run = solved(algorithm, nodes, sparse, 'fixed_point')
  np.testing.assert_array_equal(run.stats.iterations, lengths(fb) + 1)
  # And L <= N, so the default cap N + 1 is never binding.
  assert np.all(lengths(fb) <= nodes)


@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize('nodes', [16, 64])
@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_anderson_is_exact_or_says_it_is_not(algorithm, nodes, sparse):
  # (The fallback changes neither Anderson's stats nor its converged rows.)
  fb, graph, config, run = solved(algorithm, nodes, sparse, 'anderson',
                                  fallback=True)
  steps = lengths(fb) + 1
  done = np.asarray(run.stats.converged)
  # jaxopt's Anderson takes plain steps until its history is full: on such
  # graphs it is fixed-point iteration, exactly.
  short = steps <= HISTORY
  assert np.all(done[short])
  np.testing.assert_array_equal(run.stats.iterations[short], steps[short])
  # Whatever it reports as converged is the exact fixed point...
  assert_exact(fb, graph, run, algorithm, rows=done)
  # ... and never in fewer evaluations than plain iteration needs.
  assert np.all(run.stats.iterations[done] >= steps[done])
  # What it leaves unconverged it says so, with a residual above tolerance,
  # after spending its whole cap.
  assert np.all(run.stats.abs_residual[~done] > config.abs_tol)
  assert np.all(run.stats.iterations[~done] == config.eval_max_iter)
  np.testing.assert_array_equal(run.solver_h[done], run.h_star[done])
  if nodes >= 64:
    # Measured (deterministic for these seeds): with the cap N + 1 its last
    # iterate is close to the fixed point, not at it, yet decodes to CLRS's
    # pi; only the stats say that it is not exact.
    ref = oracle_data.reference_fixed_point(algorithm, fb, graph)
    floor = graph.graph_fts[:, 1:]
    err = np.abs(run.solver_h - ref.h) / np.maximum(ref.h, floor)
    assert err.max() < 1e-5
    with oracles.x64_scope(np.float64):
      pi = oracles.decode_pi(algorithm, jnp.asarray(run.solver_h)[..., None],
                             jax.tree_util.tree_map(jnp.asarray, graph))
    np.testing.assert_array_equal(pi, np.asarray(fb.outputs[0].data))


@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize('nodes', [16, 64])
@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_anderson_with_fallback_is_exact(algorithm, nodes, sparse):
  fb, graph, _, run = solved(algorithm, nodes, sparse, 'anderson',
                             fallback=True)
  fallback = run.fallback_stats
  assert np.all(fallback.converged)
  assert clrs_score(fb, run.pi) == 1.0
  assert_exact(fb, graph, run, algorithm)
  # The fallback ran only where Anderson had not converged, and (warm from
  # Anderson's iterate) never needed more than a cold plain solve.
  unconverged = ~np.asarray(run.stats.converged)
  np.testing.assert_array_equal(fallback.iterations > 0, unconverged)
  assert np.all(fallback.iterations <= lengths(fb) + 1)


@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_float32_is_exact_at_64_nodes(algorithm):
  fb, graph, _, run = solved(algorithm, 64, True, 'fixed_point',
                             dtype=np.float32)
  assert run.h_star.dtype == np.float32
  assert np.all(run.stats.converged)
  np.testing.assert_array_equal(run.stats.iterations, lengths(fb) + 1)
  assert clrs_score(fb, run.pi) == 1.0
  ref = oracle_data.reference_fixed_point(algorithm, fb, graph)
  np.testing.assert_allclose(run.h_star, ref.h, rtol=1e-5, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_exact_at_256_nodes(algorithm, sparse, method):
  fb, graph, _, run = solved(algorithm, 256, sparse, method, fallback=True)
  assert clrs_score(fb, run.pi) == 1.0
  assert_exact(fb, graph, run, algorithm)
  if method == 'fixed_point':
    assert np.all(run.stats.converged)
    np.testing.assert_array_equal(run.stats.iterations, lengths(fb) + 1)


# --- Caps and tolerances: no silent wrong answers. ---


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('algorithm', ALGORITHMS)
def test_capped_solver_reports_non_convergence(algorithm, method):
  fb = feedback(algorithm, 16, True)
  steps = lengths(fb) + 1
  ref = None
  caps = {2, int(np.median(steps)), int(steps.max()) - 1}
  if method == 'anderson':   # each cap compiles anew; one is enough here
    caps = {int(steps.max()) - 1}
  for cap in sorted(caps):
    _, graph, config, run = solved(algorithm, 16, True, method,
                                   max_iter=cap)
    ref = ref or oracle_data.reference_fixed_point(algorithm, fb, graph)
    done = np.asarray(run.stats.converged)
    # No solver confirms a fixed point in fewer than L + 1 evaluations, so a
    # graph whose bound does not fit is reported unconverged; plain
    # iteration converges exactly on the graphs where it fits.
    assert not np.any(done & (steps > cap))
    if method == 'fixed_point':
      np.testing.assert_array_equal(done, steps <= cap)
    else:
      assert np.all(done[steps <= min(cap, HISTORY)])
    assert np.all(run.stats.iterations <= cap)
    assert np.all(run.stats.abs_residual[~done] > config.abs_tol)
    # Every wrong answer is among the flagged ones: with cap < L the state
    # is short of the fixed point (for BFS some node is not reached yet).
    wrong = np.any(np.abs(run.h_star - ref.h) > 1e-12 * ref.h + 1e-300,
                   axis=1)
    assert not np.any(wrong & done)
    if method == 'fixed_point':
      np.testing.assert_array_equal(wrong, steps - 1 > cap)
    truth = np.asarray(fb.outputs[0].data)
    pi_wrong = np.any(run.pi != truth, axis=1)
    assert not np.any(pi_wrong & done)
    if algorithm == 'bfs' and method == 'fixed_point':
      np.testing.assert_array_equal(pi_wrong, steps - 1 > cap)


def path_inputs(algorithm: str, nodes: int, weight: float = 0.5):
  """A path 0 - 1 - ... - (nodes - 1) with source 0, as CLRS inputs."""
  a = np.zeros((nodes, nodes))
  idx = np.arange(nodes - 1)
  a[idx, idx + 1] = a[idx + 1, idx] = weight
  source = np.zeros(nodes)
  source[0] = 1.0
  return a, [types.SimpleNamespace(name='s', data=source[None]),
             types.SimpleNamespace(name='A', data=a[None])]


def test_relative_tolerance_stops_early_and_silently():
  # Why the oracle uses the exact absolute tolerance: on a path the last
  # node moves from 0 to g^(N-1) = exp(-R), a tiny relative change, so a
  # DEAR-style relative tolerance declares convergence before the end.
  nodes = 16
  a, inputs = path_inputs('bfs', nodes)
  graph = oracle_data.oracle_inputs('bfs', inputs)
  truth, _ = clrs.algorithms.bfs(a, 0)
  loose = solvers.SolverConfig(method='fixed_point', rel_tol=1e-3,
                               max_iter=nodes + 1, eval_max_iter=nodes + 1)
  run = oracles.run_oracle('bfs', graph, loose)
  assert run.stats.converged[0]
  assert run.stats.iterations[0] < nodes + 1
  assert np.any(run.pi[0] != truth)
  exact = oracles.run_oracle(
      'bfs', graph, oracles.oracle_solver_config('fixed_point', nodes))
  assert exact.stats.converged[0]
  assert exact.stats.iterations[0] == nodes + 1   # L = N on a path.
  np.testing.assert_array_equal(exact.pi[0], truth)


# --- Cells, inputs and decoding on hand-made graphs. ---


def test_bfs_cell_steps_follow_clrs_rounds():
  nodes = 5
  _, inputs = path_inputs('bfs', nodes)
  graph = oracle_data.oracle_inputs('bfs', inputs, dtype=np.float32)
  g = graph.graph_fts[0, 0]
  cell = oracles.make_oracle_cell('bfs')
  h = np.zeros((1, nodes, 1), np.float32)
  for k in range(1, nodes + 1):
    h = np.asarray(cell.apply({}, graph.node_fts, graph.edge_fts,
                              graph.graph_fts, graph.adj_mat, h))
    expected = np.where(np.arange(nodes) < k, g ** np.arange(nodes), 0.0)
    np.testing.assert_allclose(h[0, :, 0], expected, rtol=1e-6)
  assert np.isclose(g ** (nodes - 1), np.exp(-oracles.DEFAULT_LOG_RANGE))


def test_tie_breaking_and_unreachable_nodes_match_clrs():
  # 0 is the source; 3 has two shortest paths (via 1 and via 2, equal
  # weights); 4 - 5 is a separate component.
  a = np.zeros((6, 6))
  for u, v, w in [(0, 1, 0.3), (0, 2, 0.3), (1, 3, 0.5), (2, 3, 0.5),
                  (4, 5, 0.2)]:
    a[u, v] = a[v, u] = w
  source = np.eye(6)[0]
  inputs = [types.SimpleNamespace(name='s', data=source[None]),
            types.SimpleNamespace(name='A', data=a[None])]
  for algorithm in ALGORITHMS:
    graph = oracle_data.oracle_inputs(algorithm, inputs)
    run = oracles.run_oracle(
        algorithm, graph, oracles.oracle_solver_config('fixed_point', 6))
    truth, _ = getattr(clrs.algorithms, algorithm)(a, 0)
    np.testing.assert_array_equal(run.pi[0], truth)
    np.testing.assert_array_equal(run.pi[0], [0, 0, 0, 1, 4, 5])


def test_inputs_and_cells_validate():
  _, inputs = path_inputs('bfs', 4)
  with pytest.raises(ValueError, match='no oracle'):
    oracle_data.oracle_inputs('dfs', inputs)
  with pytest.raises(ValueError, match='non-negative'):
    bad = [inputs[0], types.SimpleNamespace(name='A', data=-inputs[1].data)]
    oracle_data.oracle_inputs('bellman_ford', bad)
  with pytest.raises(KeyError):
    oracle_data.oracle_inputs('bfs', inputs[:1])
  with pytest.raises(ValueError, match='too large'):
    oracles.oracle_solver_config('fixed_point', 4, dtype=np.float32,
                                 log_range=30.0)
  oracles.oracle_solver_config('fixed_point', 4, dtype=np.float32,
                               log_range=25.0)
  oracles.oracle_solver_config('fixed_point', 4, log_range=300.0)
  graph = oracle_data.oracle_inputs('bfs', inputs)
  with pytest.raises(ValueError, match='size 1'):
    oracles.BFSOracleCell(out_size=2).init(
        jax.random.PRNGKey(0), graph.node_fts, graph.edge_fts,
        graph.graph_fts, graph.adj_mat, np.zeros((1, 4, 2)))
  variables = oracles.BellmanFordOracleCell().init(
      jax.random.PRNGKey(0), graph.node_fts, graph.edge_fts, graph.graph_fts,
      graph.adj_mat, np.zeros((1, 4, 1)))
  assert not jax.tree_util.tree_leaves(variables)   # nothing to train


# --- Implicit differentiation at the non-smooth fixed point. ---
#
# The maps are maxima of linear branches, so J = df/dh at H* has rows of
# non-negative entries summing to at most the largest branch factor (g, or
# max exp(-w/t) < 1 since CLRS weights are >= sqrt(1e-3) > 0): ||J||_inf < 1
# and I - J is invertible, ties or not. jaxopt's implicit differentiation
# therefore raises nothing and returns a finite gradient. Where the solution
# map is differentiable the gradient is exact (tests 1, 2, even with ties
# when the tied branches agree); at a genuine kink JAX's max splits the
# derivative equally between tied branches and the result is the average of
# the one-sided derivatives (test 3).


def implicit_sum(algorithm, graph, edge_fts, graph_fts):
  """``sum(H*)`` through the equilibrium layer with implicit gradients."""
  nodes = graph.node_fts.shape[1]
  config = deq.DEQConfig(
      solver=oracles.oracle_solver_config('fixed_point', nodes),
      backward=solvers.BackwardConfig(mode='implicit', linear_tol=1e-12,
                                      linear_max_iter=200),
      noise_std=0.0, jac_reg_weight=0.0)
  graph = deq.GraphInputs(
      jnp.asarray(graph.node_fts), edge_fts, graph_fts,
      jnp.asarray(graph.adj_mat))
  h, stats = deq.equilibrium(oracles.make_oracle_cell(algorithm), {}, graph,
                             config=config, training=True)
  return jnp.sum(h), stats


def test_implicit_gradient_is_exact_for_bellman_ford():
  fb = feedback('bellman_ford', 16, True)
  with oracles.x64_scope(np.float64):
    graph = oracle_data.oracle_inputs('bellman_ford', fb.features.inputs)
    (g_w, g_t), stats = jax.jit(jax.grad(
        functools.partial(implicit_sum, 'bellman_ford', graph),
        argnums=(0, 1), has_aux=True))(jnp.asarray(graph.edge_fts),
                                      jnp.asarray(graph.graph_fts))
    g_w, g_t = np.asarray(g_w[..., 0]), np.asarray(g_t)
  assert np.all(np.asarray(stats.solver.converged))
  ref = oracle_data.reference_fixed_point('bellman_ford', fb, graph)
  truth = np.asarray(fb.outputs[0].data)
  inv_t = graph.graph_fts[:, 0]
  for b in range(NUM_GRAPHS):
    # h_x = exp(-d_x / t): d sum(h) / d w_uv = -(1/t) * (sum of h over the
    # shortest-path subtree below v) if u = pi(v), else 0.
    expected = np.zeros((16, 16))
    for v in range(16):
      if truth[b, v] == v:
        continue
      below = 0.0
      for x in range(16):
        y = x
        while truth[b, y] != y and y != v:
          y = truth[b, y]
        if y == v:
          below += ref.h[b, x]
      expected[truth[b, v], v] = -inv_t[b] * below
    np.testing.assert_allclose(g_w[b], expected, atol=1e-10)
    dist = np.where(np.isfinite(ref.dist[b]), ref.dist[b], 0.0)
    np.testing.assert_allclose(g_t[b, 0], -np.sum(dist * ref.h[b]),
                               rtol=1e-9)
  np.testing.assert_array_equal(g_t[:, 1], 0.0)   # the floor is not used


def test_implicit_gradient_is_exact_at_bfs_ties():
  # BFS fixed points are full of ties (every neighbour one level closer is
  # an argmax); all tied branches give g^dist, so the split is harmless and
  # d sum(H*) / dg = sum over reachable v of dist(v) g^(dist(v) - 1).
  fb = feedback('bfs', 16, True)
  with oracles.x64_scope(np.float64):
    graph = oracle_data.oracle_inputs('bfs', fb.features.inputs)
    g_t = jax.jit(jax.grad(
        lambda gf: implicit_sum('bfs', graph, jnp.asarray(graph.edge_fts),
                                gf)[0]))(jnp.asarray(graph.graph_fts))
    g_t = np.asarray(g_t)
  ref = oracle_data.reference_fixed_point('bfs', fb, graph)
  g = graph.graph_fts[:, 0][:, None]
  reach = np.isfinite(ref.dist)
  dist = np.where(reach, ref.dist, 0.0)
  expected = np.sum(np.where(reach & (dist > 0), dist * g ** (dist - 1), 0.0),
                    axis=1)
  np.testing.assert_allclose(g_t[:, 0], expected, rtol=1e-9)


def test_implicit_gradient_averages_one_sided_derivatives_at_a_kink():
  # Node 3 has two exactly tied shortest paths 0-1-3 and 0-2-3. sum(H*) as
  # a function of w_13 has a kink: lowering w_13 makes the path via 1 the
  # shortest (slope -h_3 / t), raising it leaves the path via 2 (slope 0).
  a = np.zeros((4, 4))
  for u, v, w in [(0, 1, 0.3), (0, 2, 0.3), (1, 3, 0.5), (2, 3, 0.5)]:
    a[u, v] = a[v, u] = w
  inputs = [types.SimpleNamespace(name='s', data=np.eye(4)[0][None]),
            types.SimpleNamespace(name='A', data=a[None])]
  with oracles.x64_scope(np.float64):
    graph = oracle_data.oracle_inputs('bellman_ford', inputs)
    gf = jnp.asarray(graph.graph_fts)

    @jax.jit
    def total(edge_fts):
      return implicit_sum('bellman_ford', graph, edge_fts, gf)[0]

    edge = jnp.asarray(graph.edge_fts)
    grad = float(jax.jit(jax.grad(total))(edge)[0, 1, 3, 0])
    eps = 1e-6
    base = float(total(edge))
    left = (base - float(total(edge.at[0, 1, 3, 0].add(-eps)))) / eps
    right = (float(total(edge.at[0, 1, 3, 0].add(eps))) - base) / eps
  inv_t = graph.graph_fts[0, 0]
  h3 = np.exp(-0.8 * inv_t)
  np.testing.assert_allclose(left, -inv_t * h3, rtol=1e-4)
  np.testing.assert_allclose(right, 0.0, atol=1e-8)
  np.testing.assert_allclose(grad, 0.5 * (left + right), rtol=1e-4)
  assert np.isfinite(grad)


# --- The oracle command. ---


def test_command_rows_and_table():
  fb = feedback('bfs', 16, True)
  row, run = oracle_cmd.evaluate('bfs', fb, 'fixed_point')
  assert row.score == 1.0 and row.exact == row.graphs == NUM_GRAPHS
  assert row.converged == NUM_GRAPHS
  assert row.excess_min == row.excess_max == 0
  assert row.iters_max == lengths(fb).max() + 1
  assert row.fallback_mean is None
  table = oracle_cmd.format_rows([row])
  assert table.splitlines()[0].split()[:4] == ['algorithm', 'N', 'solver',
                                                'score']
  assert 'bfs' in table.splitlines()[2]


@pytest.mark.slow
def test_command_runs_end_to_end():
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root)
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.oracle_runs', '--sizes=16',
       '--num_graphs=2', '--sparse'],
      cwd=root, env=env, capture_output=True, text=True, check=True).stdout
  rows = [line.split() for line in out.splitlines()
          if line.startswith(('bfs ', 'bellman_ford '))]
  assert [(r[0], r[2]) for r in rows] == [
      ('bfs', 'fixed_point'), ('bfs', 'anderson'),
      ('bellman_ford', 'fixed_point'), ('bellman_ford', 'anderson')]
  assert all(r[3] == '1.0000' and r[4] == '2/2' for r in rows)
