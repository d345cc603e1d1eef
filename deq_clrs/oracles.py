"""Exact oracle cells: BFS and Bellman-Ford as hand-set message passing.

Core layer (no CLRS): the maps, cells, decoding and runner. Building the
inputs from CLRS data (``oracle_inputs``) and reading the reference fixed
point off CLRS hints are in :mod:`deq_clrs.integration.oracle_data`.

Both algorithms compute the least fixed point of a monotone max-type map, so
each can be written as ONE message-passing step with fixed (not learned)
weights and solved by the same equilibrium layer and solvers as the learned
cells (:func:`deq_clrs.deq.equilibrium`, from H(0) = 0). That gives a check
that no learned model can give: on real CLRS graphs the solvers must find the
*right* fixed point, and its decoded pointers must match CLRS's outputs.

The maps (node state ``h`` of size 1; ``A[u, v] != 0`` means u sends to v):

* BFS: ``f(h)_v = max(s_v, g * max_{u -> v} h_u)`` with ``0 < g < 1`` and ``s``
  the source indicator. From 0, ``h_v`` rises to ``g ** dist(v)`` on reachable
  nodes and stays 0 elsewhere.
* Bellman-Ford: ``f(h)_v = max(s_v, max_{u -> v} h_u * exp(-w_uv / t))``,
  the max-times semiring, i.e. min-plus on ``d = -t log h``. From 0, ``h_v``
  rises to ``exp(-dist(v) / t)`` (CLRS weights are positive).

The iterates from 0 follow CLRS's own rounds: after ``k`` evaluations of
``f``, ``h`` holds the best walks of at most ``k - 1`` edges, exactly CLRS's
state after ``k - 1`` rounds. CLRS stops after the first round that changes
nothing and has pushed one hint per round, so its ``lengths`` L is that number
of rounds; plain fixed-point iteration therefore needs exactly ``L + 1``
evaluations of ``f`` (the first, ``f(0) = s``, is CLRS's initialisation; the
last is the round that confirms nothing changes).

Numerics (the values span ``[exp(-R), 1]`` with ``R = log_range``):

* The map's constant is chosen per graph from its size and weights so that
  the smallest value a reachable node can take is ``exp(-R)``: BFS uses
  ``g = exp(-R / (N - 1))``; Bellman-Ford uses ``t = D / R`` with the bound
  ``D = (N - 1) * max_w`` on any shortest-path length.
* The solvers measure residuals as ``sqrt(sum(diff ** 2))``. A node whose value
  changes by one ulp of ``exp(-R)`` must leave a non-zero square, otherwise
  the solver would see a zero residual before the fixed point is reached.
  ``R = 20`` keeps ``(exp(-R) * eps) ** 2`` a normal number in float32
  (``~3e-33``) and in float64; XLA on CPU flushes subnormals to zero.
* :func:`oracle_solver_config` disables the relative tolerance (a far node
  moving from 0 to ``exp(-R)`` is a tiny relative change) and sets the
  absolute tolerance below one ulp of ``exp(-R)``: with plain fixed-point
  iteration, "converged" then means "exactly at the fixed point".
* float64 is the default dtype: Bellman-Ford's pointers are an argmax over
  sums of random real weights, and float32 (relative precision 6e-8 on
  products of up to N factors) flips near-ties on large graphs. The runner
  enables 64-bit JAX only for its own computation (``jax.enable_x64``).

Decoding follows CLRS's tie-breaking (``clrs/_src/algorithms/graphs.py``):
the source and unreachable nodes point to themselves; in BFS a node points to
the smallest-index neighbour one level closer to the source (CLRS scans senders
in index order and keeps the first one found in the round the node is
reached); in Bellman-Ford to the sender with the best ``h_u * exp(-w_uv / t)``
(CLRS keeps the first sender of minimum distance; exact ties between distinct
paths of random real weights have probability 0, and ``argmax`` takes the
smallest index among them).

What the solvers do on these maps (measured on CLRS graphs of 16-256 nodes;
``python -m experiments.oracle_runs`` prints it, ``deq_clrs/oracles_test.py``
pins it):

* Plain fixed-point iteration is exact and optimal: it stops with a residual
  of exactly 0 after exactly ``L + 1`` evaluations on every graph. For BFS no
  method that only evaluates ``f`` at affine combinations of earlier outputs
  (Anderson included) can do better: such points are 0 on every node at
  distance >= k after k evaluations, so the farthest node is right only
  after L evaluations and confirming it takes one more.
* jaxopt's Anderson takes plain steps until its history is full, so on graphs
  with ``L + 1 <= history_size`` it IS fixed-point iteration (the dense CLRS
  default graphs mostly). Once it extrapolates, its iterates are affine
  mixtures whose rounding leaves a residual of ~1e-16 (float64) that almost
  never reaches the exact tolerance (it may hit 0 by chance), so it usually
  spends its whole cap and reports ``converged=False``. In our samples what
  it returned then was within 1e-5 (relative, often 1e-15) of the fixed
  point and decoded right when the cap was large (N + 1 at N >= 64), and
  could be far off and decode wrong when it was small (N = 16). It was never
  faster than plain iteration (for BFS it cannot be, see above).
  ``run_oracle(..., fallback=True)`` finishes such graphs with
  plain iteration from Anderson's iterate, which is then exact again (within
  ``L + 1`` further evaluations in our samples).
* Implicit differentiation raises no error at these non-smooth fixed points:
  ``J = df/dh`` at H* has non-negative rows summing to at most the largest
  branch factor (g, or ``max exp(-w/t) < 1``; CLRS weights are at least
  ``sqrt(1e-3)``), so ``I - J`` is invertible, ties or not. Where the
  solution map is differentiable the implicit gradient is its exact
  gradient (also at BFS's ties, whose branches agree); at a genuine kink
  (two exactly tied shortest paths) JAX's ``max`` splits the derivative
  equally between the tied branches and the result is the average of the
  one-sided derivatives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deq_clrs import cells as cells_lib
from deq_clrs import deq as deq_lib
from deq_clrs import gradients
from deq_clrs import solvers

ALGORITHMS = ('bfs', 'bellman_ford')
DEFAULT_LOG_RANGE = 20.0

# Columns of the oracle's graph features.
CONSTANT = 0   # BFS: the decay g; Bellman-Ford: the inverse temperature 1/t.
FLOOR = 1      # Half the smallest value a reachable node can take.


def check_algorithm(algorithm: str) -> None:
  if algorithm not in ALGORITHMS:
    raise ValueError(f'no oracle for {algorithm!r}; expected one of '
                     f'{list(ALGORITHMS)}')


def _check_out_size(out_size: int) -> None:
  if out_size != 1:
    raise ValueError(f'oracle cells have node states of size 1, got '
                     f'out_size={out_size}')


def bfs_messages(hidden: jax.Array, graph_fts: jax.Array) -> jax.Array:
  """BFS messages ``m_uv = g * h_u``.

  Args:
    hidden: node states [B, N, 1].
    graph_fts: oracle graph features [B, 2]; column 0 is the decay g.

  Returns:
    [B, N, 1, 1], broadcastable to [B, N_send, N_recv, 1].
  """
  g = graph_fts[:, CONSTANT][:, None, None, None]
  return g * hidden[:, :, None, :]


def bellman_ford_messages(hidden: jax.Array, edge_fts: jax.Array,
                          graph_fts: jax.Array) -> jax.Array:
  """Bellman-Ford messages ``m_uv = h_u * exp(-w_uv / t)``.

  Args:
    hidden: node states [B, N, 1].
    edge_fts: edge weights [B, N, N, 1], ``edge_fts[b, u, v] = w_uv``.
    graph_fts: oracle graph features [B, 2]; column 0 is ``1 / t``.

  Returns:
    [B, N_send, N_recv, 1].
  """
  inv_t = graph_fts[:, CONSTANT][:, None, None, None]
  return hidden[:, :, None, :] * jnp.exp(-edge_fts[..., :1] * inv_t)


class BFSOracleCell(nn.Module):
  """One BFS round as a cell: ``f(h)_v = max(s_v, g * max_{u -> v} h_u)``.

  Same interface as :mod:`deq_clrs.cells`, no parameters. Inputs as built by
  ``oracle_inputs``: ``node_fts`` [B, N, 1] the source indicator,
  ``graph_fts`` [B, 2] (decay g, reachability floor), ``adj_mat`` [B, N, N]
  the edges; ``edge_fts`` is unused. ``hidden`` and the output are [B, N, 1].
  """
  out_size: int = 1

  @nn.compact
  def __call__(self, node_fts: jax.Array, edge_fts: jax.Array,
               graph_fts: jax.Array, adj_mat: jax.Array,
               hidden: jax.Array) -> jax.Array:
    _check_out_size(self.out_size)
    del edge_fts
    agg = cells_lib.aggregate(bfs_messages(hidden, graph_fts), adj_mat, 'max')
    return jnp.maximum(node_fts[..., :1], agg)


class BellmanFordOracleCell(nn.Module):
  """One Bellman-Ford round in the max-times semiring, as a cell.

  ``f(h)_v = max(s_v, max_{u -> v} h_u * exp(-w_uv / t))``. Same interface as
  :mod:`deq_clrs.cells`, no parameters. Inputs as built by
  ``oracle_inputs``: ``node_fts`` [B, N, 1] the source indicator,
  ``edge_fts`` [B, N, N, 1] the weights, ``graph_fts`` [B, 2] (``1 / t``,
  reachability floor), ``adj_mat`` [B, N, N] the edges. ``hidden`` and the
  output are [B, N, 1].
  """
  out_size: int = 1

  @nn.compact
  def __call__(self, node_fts: jax.Array, edge_fts: jax.Array,
               graph_fts: jax.Array, adj_mat: jax.Array,
               hidden: jax.Array) -> jax.Array:
    _check_out_size(self.out_size)
    msgs = bellman_ford_messages(hidden, edge_fts, graph_fts)
    agg = cells_lib.aggregate(msgs, adj_mat, 'max')
    return jnp.maximum(node_fts[..., :1], agg)


ORACLE_CELLS = {
    'bfs': BFSOracleCell,
    'bellman_ford': BellmanFordOracleCell,
}


def make_oracle_cell(algorithm: str) -> nn.Module:
  """An unbound oracle cell for ``algorithm`` (``out_size`` 1, no params)."""
  check_algorithm(algorithm)
  return ORACLE_CELLS[algorithm](out_size=1, parent=None)


def decode_pi(algorithm: str, h_star: jax.Array,
              graph: deq_lib.GraphInputs) -> jax.Array:
  """Decodes CLRS's ``pi`` output from an oracle's fixed point.

  Args:
    algorithm: ``'bfs'`` or ``'bellman_ford'``.
    h_star: fixed point [B, N, 1].
    graph: the oracle inputs it was solved for (see ``oracle_inputs``).

  Returns:
    int32 [B, N]: ``pi[b, v]`` is v's predecessor; the source and the nodes
    below the reachability floor point to themselves. BFS: smallest-index
    sender on the level ``round(log h / log g)`` just below v's (robust to
    errors below a factor ``sqrt(g)``); Bellman-Ford: first argmax over
    senders of ``h_u * exp(-w_uv / t)``.
  """
  check_algorithm(algorithm)
  h = h_star[..., 0]
  nodes = h.shape[1]
  adj = graph.adj_mat > 0
  if algorithm == 'bfs':
    log_g = jnp.log(graph.graph_fts[:, CONSTANT])[:, None]
    level = jnp.round(jnp.log(jnp.maximum(h, graph.graph_fts[:, FLOOR:])) /
                      log_g)
    reached_u = (h >= graph.graph_fts[:, FLOOR:])[:, :, None]
    # score[b, u, v]: u is a reached sender of v one level closer to the
    # source.
    score = adj & reached_u & (level[:, :, None] == level[:, None, :] - 1)
  else:
    msgs = bellman_ford_messages(h_star, graph.edge_fts, graph.graph_fts)
    msgs = jnp.broadcast_to(msgs[..., 0], adj.shape)
    score = jnp.where(adj, msgs, -jnp.inf)
  parent = jnp.argmax(score, axis=1).astype(jnp.int32)
  self_ptr = jnp.arange(nodes, dtype=jnp.int32)[None, :]
  reached = h >= graph.graph_fts[:, FLOOR:]
  is_source = graph.node_fts[..., 0] > 0
  keep_self = is_source | ~reached
  return jnp.where(keep_self, self_ptr, parent)


def oracle_solver_config(method: str, num_nodes: int, *,
                         dtype=np.float64,
                         log_range: float = DEFAULT_LOG_RANGE,
                         max_iter: int | None = None,
                         **kwargs) -> solvers.SolverConfig:
  """Solver settings under which "converged" means "at the fixed point".

  ``rel_tol = 0`` and ``abs_tol`` a quarter of one ulp of ``exp(-R)``: any
  change of any reachable node's value leaves a larger residual, so plain
  fixed-point iteration stops exactly at the fixed point.

  Args:
    method: ``'fixed_point'`` or ``'anderson'``.
    num_nodes: N; the default cap ``N + 1`` is the most evaluations plain
      iteration can need (CLRS's L is at most N).
    dtype: the dtype the oracle runs in.
    log_range: R, as in ``oracle_inputs``.
    max_iter: iteration cap (training and evaluation); default ``N + 1``.
    **kwargs: further :class:`~deq_clrs.solvers.SolverConfig` fields (e.g.
      Anderson's ``history_size``, ``ridge``).

  Returns:
    A :class:`~deq_clrs.solvers.SolverConfig`.

  Raises:
    ValueError: if one ulp of ``exp(-R)`` squares below the dtype's smallest
      normal number (R above ~27 in float32, ~317 in float64).
  """
  cap = num_nodes + 1 if max_iter is None else max_iter
  info = np.finfo(dtype)
  abs_tol = 0.25 * float(np.exp(-log_range)) * float(info.eps)
  if (2.0 * abs_tol) ** 2 < float(info.tiny):
    # The smallest change (an ulp of exp(-R)) would square to a subnormal,
    # which XLA on CPU flushes to 0: the residual would read 0 too early.
    raise ValueError(f'log_range={log_range} is too large for {info.dtype}: '
                     'residual norms would underflow')
  return solvers.SolverConfig(method=method, max_iter=cap, eval_max_iter=cap,
                              rel_tol=0.0, abs_tol=abs_tol, **kwargs)


def x64_scope(dtype) -> contextlib.AbstractContextManager:
  """Enables 64-bit JAX inside the scope when ``dtype`` is float64."""
  if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
    return jax.enable_x64(True)
  return contextlib.nullcontext()


class OracleRun(NamedTuple):
  """Result of :func:`run_oracle` for B graphs (numpy arrays).

  Attributes:
    h_star: fixed points [B, N] (after the fallback, if one ran).
    pi: predecessors [B, N] (int32) decoded from ``h_star``.
    stats: the requested solver's per-graph
      :class:`~deq_clrs.solvers.SolverStats` ([B] each).
    fallback_stats: stats of the plain fixed-point iteration that finished
      the graphs the requested solver left unconverged (iterations 0 where it
      did not run), or None when no fallback was asked for.
    solver_h: the requested solver's own last iterate [B, N] (equal to
      ``h_star`` without a fallback).
  """
  h_star: np.ndarray
  pi: np.ndarray
  stats: solvers.SolverStats
  fallback_stats: solvers.SolverStats | None = None
  solver_h: np.ndarray | None = None


# The oracle runs in evaluation mode, where no gradient is taken; 'implicit'
# makes the layer return the solver's own last iterate (the 'phantom' mode
# would apply the cell once more than the stats count).
_NO_EXTRA_STEP = solvers.BackwardConfig(mode='implicit')


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _solve_and_decode(algorithm, graph, config, fallback):
  cell = make_oracle_cell(algorithm)
  h_star, stats = deq_lib.equilibrium(cell, {}, graph, config=config,
                                      training=False)
  stats = stats.solver
  solver_h = h_star
  fallback_stats = None
  if fallback is not None:
    # Plain iteration from the first solver's iterate. A graph already at its
    # fixed point would confirm it in one evaluation; it is left alone.
    f = deq_lib.single_graph_map(cell)
    h_fb, fallback_stats = gradients.solve(
        f, h_star, {}, (graph, jnp.zeros_like(h_star), None),
        config=fallback,
        backward=_NO_EXTRA_STEP, training=False)
    done = stats.converged
    h_star = jnp.where(done[:, None, None], h_star, h_fb)
    fallback_stats = solvers.SolverStats(
        iterations=jnp.where(done, 0, fallback_stats.iterations),
        abs_residual=jnp.where(done, stats.abs_residual,
                               fallback_stats.abs_residual),
        rel_residual=jnp.where(done, stats.rel_residual,
                               fallback_stats.rel_residual),
        converged=done | fallback_stats.converged,
        returned=jnp.where(done, 0, fallback_stats.returned))
  pi = decode_pi(algorithm, h_star, graph)
  return h_star, pi, stats, fallback_stats, solver_h


def run_oracle(algorithm: str, graph: deq_lib.GraphInputs,
               solver: solvers.SolverConfig, *,
               fallback: bool = False) -> OracleRun:
  """Solves an oracle through :func:`deq_clrs.deq.equilibrium` and decodes it.

  Runs in evaluation mode (no noise, cap ``solver.eval_max_iter``) in the
  dtype of ``graph`` (float64 inputs switch 64-bit JAX on for the call).

  Args:
    algorithm: ``'bfs'`` or ``'bellman_ford'``.
    graph: numpy inputs from ``oracle_inputs``.
    solver: forward solver settings, normally :func:`oracle_solver_config`.
    fallback: finish every graph that ``solver`` left unconverged with plain
      fixed-point iteration (same tolerances, cap N + 1) started from its
      last iterate; its cost is reported in ``fallback_stats``.

  Returns:
    An :class:`OracleRun`.
  """
  check_algorithm(algorithm)
  dtype = graph.node_fts.dtype
  config = deq_lib.DEQConfig(solver=solver, backward=_NO_EXTRA_STEP,
                             noise_std=0.0)
  fallback_config = None
  if fallback:
    nodes = graph.node_fts.shape[1]
    fallback_config = dataclasses.replace(
        solver, method='fixed_point', max_iter=nodes + 1,
        eval_max_iter=nodes + 1)
  with x64_scope(dtype):
    graph = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), graph)
    out = _solve_and_decode(algorithm, graph, config, fallback_config)
    h_star, pi, stats, fallback_stats, solver_h = jax.device_get(out)
  return OracleRun(h_star=np.asarray(h_star[..., 0]), pi=np.asarray(pi),
                   stats=stats, fallback_stats=fallback_stats,
                   solver_h=np.asarray(solver_h[..., 0]))
