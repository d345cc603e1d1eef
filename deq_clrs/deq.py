"""The equilibrium layer: a cell, a solver and a backward mode.

Given encoded graph inputs (U, E, G, A) and a message-passing cell P, the
layer returns the node states H* = P(H*, U, E, G, A) found from H(0) = 0,
one solve per graph, with the gradient chosen in :class:`DEQConfig`. It also
offers DEAR's training extras: small Gaussian noise inside the fixed-point map
and a Hutchinson estimate of ||J_P(H*)||_F^2 / (N * D) whose gradient is added
to the loss.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from deq_clrs import alignment
from deq_clrs import cells as cells_lib
from deq_clrs import gradients
from deq_clrs import solvers


class GraphInputs(NamedTuple):
  """Encoded inputs of a batch of graphs, fixed during the solve.

  Attributes:
    node_fts: [B, N, F]; edge_fts: [B, N, N, F]; graph_fts: [B, F];
    adj_mat: [B, N, N].
  """
  node_fts: jax.Array
  edge_fts: jax.Array
  graph_fts: jax.Array
  adj_mat: jax.Array


class EquilibriumStats(NamedTuple):
  """What the layer reports per graph (every field has shape [B]).

  Attributes:
    solver: the :class:`~deq_clrs.solvers.SolverStats` of the solve.
    jac_frobenius: Hutchinson estimate of ||J_P(H*)||_F^2 / (N * D), the
      regulariser's scale (zeros unless the Jacobian regulariser is on and
      the layer is training).
  """
  solver: solvers.SolverStats
  jac_frobenius: jax.Array


class TrajectorySamples(NamedTuple):
  """Solver states of each graph for DEAR's alignment regulariser.

  Attributes:
    states: [B, S, N, D]: for each sampled iterate ``h_i`` of the solve
      (chosen by :func:`deq_clrs.alignment.sample_indices`, in solver
      order), the map applied once to it, ``P(stop_gradient(h_i))``: its
      value is the solver's next state and its gradient reaches the
      parameters and inputs as the phantom step's does.
    valid: [B, S] which entries are real.
  """
  states: jax.Array
  valid: jax.Array


@dataclasses.dataclass(frozen=True)
class DEQConfig:
  """Everything about the equilibrium layer except the cell.

  The defaults are those of the reference (the authors' DEAR code on
  torchdeq); the alternatives are options.

  Attributes:
    solver: forward solver settings (tolerances, caps for train and eval).
    backward: gradient mode.
    noise_std: std of the Gaussian noise added to P's output; 0 disables.
    noise_per_call: draw fresh noise on every call of P, as the reference
      does (default); False draws it once per forward pass, so the map stays
      deterministic during a solve.
    noise_in_eval: add the noise at evaluation too, as the reference does
      (default); False adds it only in training.
    jac_reg_weight: weight of the Jacobian regulariser, on the reference's
      scale: the Hutchinson estimate of ||J_P(H*)||_F^2 divided by the number
      of elements N * D of one graph's state, averaged over graphs. Its
      gradient is added to whatever loss is differentiated through the layer
      (the loss value itself is unchanged). 0 disables.
    jac_reg_samples: probe vectors of the Hutchinson estimate.
    trajectory_samples: in training, also return up to this many sampled
      solver states per graph (:class:`TrajectorySamples`) for the
      alignment regulariser; 0 (default) returns none. Needs the phantom
      backward mode.
  """
  solver: solvers.SolverConfig = solvers.SolverConfig()
  backward: solvers.BackwardConfig = solvers.BackwardConfig()
  noise_std: float = 1e-3
  noise_per_call: bool = True
  noise_in_eval: bool = True
  jac_reg_weight: float = 1e-4
  jac_reg_samples: int = 1
  trajectory_samples: int = 0

  def __post_init__(self):
    if self.noise_std < 0 or self.jac_reg_weight < 0:
      raise ValueError('noise_std and jac_reg_weight must be >= 0')
    if self.jac_reg_samples < 1:
      raise ValueError('jac_reg_samples must be >= 1')
    if self.trajectory_samples < 0:
      raise ValueError(f'trajectory_samples must be >= 0, got '
                       f'{self.trajectory_samples}')
    if self.trajectory_samples and self.backward.mode != 'phantom':
      raise ValueError(
          f'trajectory_samples (the alignment regulariser) needs the phantom '
          f'backward mode, got backward={self.backward.mode!r}')

  def uses_noise(self, training: bool) -> bool:
    """Whether the map adds noise in this mode."""
    return self.noise_std > 0 and (training or self.noise_in_eval)

  def uses_jac_reg(self, training: bool) -> bool:
    """Whether the Jacobian regulariser is computed in this mode."""
    return training and self.jac_reg_weight > 0


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def attach_loss_gradient(x: Any, aux_loss: jax.Array, weight: float) -> Any:
  """Returns ``x`` unchanged; in reverse mode adds ``weight * d aux_loss``.

  Differentiating ``L(attach_loss_gradient(x, r, w))`` gives the gradient of
  ``L + w * sum(r)`` with respect to everything ``x`` and ``r`` depend on. It
  lets a layer contribute a regulariser to a loss it cannot see (CLRS's
  ``BaselineModel`` computes its own loss).
  """
  del aux_loss, weight
  return x


def _attach_fwd(x, aux_loss, weight):
  del weight
  return x, jnp.zeros_like(aux_loss)


def _attach_bwd(weight, zeros, g):
  return g, zeros + weight


attach_loss_gradient.defvjp(_attach_fwd, _attach_bwd)


def single_graph_map(cell: nn.Module):
  """Turns a batched cell into the per-graph map ``f(h, params, inputs)``.

  ``h`` is [N, D]; ``inputs`` is ``(GraphInputs of one graph, noise [N, D],
  noise key)``; the map adds ``noise`` to the cell's output (the key is only
  read by :func:`noise_at`).
  """
  def f(h, params, inputs):
    graph, noise, _ = inputs
    batch1 = jax.tree_util.tree_map(lambda x: x[None], graph)
    out = cell.apply({'params': params}, batch1.node_fts, batch1.edge_fts,
                     batch1.graph_fts, batch1.adj_mat, h[None])[0]
    return out + noise
  return f


def noise_at(std: float):
  """``inputs_at`` for per-call noise: call ``i`` of the map gets
  ``std * normal(fold_in(key, i))`` of one graph's state shape."""
  def at(inputs, i):
    graph, noise, key = inputs
    fresh = std * jax.random.normal(jax.random.fold_in(key, i), noise.shape,
                                    noise.dtype)
    return graph, fresh, key
  return at


def equilibrium(cell: nn.Module, params: Any, graph: GraphInputs, *,
                config: DEQConfig, training: bool,
                rng: jax.Array | None = None
                ) -> tuple[jax.Array, EquilibriumStats]:
  """Solves H* = P(H*, U, E, G, A) per graph from H(0) = 0.

  The arguments and results are those of :func:`equilibrium_and_samples`,
  without the trajectory samples.
  """
  h_star, stats, _ = equilibrium_and_samples(
      cell, params, graph, config=config, training=training, rng=rng)
  return h_star, stats


def equilibrium_and_samples(
    cell: nn.Module, params: Any, graph: GraphInputs, *, config: DEQConfig,
    training: bool, rng: jax.Array | None = None
) -> tuple[jax.Array, EquilibriumStats, TrajectorySamples | None]:
  """Solves H* = P(H*, U, E, G, A) per graph from H(0) = 0.

  Args:
    cell: an unbound Flax cell (see :mod:`deq_clrs.cells`) with attribute
      ``out_size`` D.
    params: the cell's ``'params'`` collection.
    graph: encoded inputs of B graphs of N nodes.
    config: solver, backward mode and training extras.
    training: training mode (training cap, Jacobian regulariser, noise) or
      evaluation mode (evaluation cap; noise only with ``noise_in_eval``).
    rng: PRNG key; required when the mode uses noise or the regulariser.

  Returns:
    ``(h_star [B, N, D], EquilibriumStats, samples)``: ``samples`` is a
    :class:`TrajectorySamples` in training with ``trajectory_samples > 0``,
    else None.
  """
  batch, nodes = graph.node_fts.shape[:2]
  shape = (batch, nodes, cell.out_size)
  h0 = jnp.zeros(shape, graph.node_fts.dtype)
  use_jac = config.uses_jac_reg(training)
  record = training and config.trajectory_samples > 0
  if (config.uses_noise(training) or use_jac or record) and rng is None:
    raise ValueError('equilibrium() needs an rng when it adds noise, '
                     'computes the Jacobian regulariser or samples the '
                     'trajectory')
  if rng is None:
    rng = jax.random.PRNGKey(0)  # Unused: no noise, no regulariser.
  noise_key, jac_key = jax.random.split(rng)
  sample_key = jax.random.fold_in(rng, 2)
  inputs, inputs_at = _noisy_inputs(graph, h0, noise_key, config, training)
  f = single_graph_map(cell)
  solved = gradients.solve(
      f, h0, params, inputs, config=config.solver,
      backward=config.backward, training=training, inputs_at=inputs_at,
      record_trajectory=record)
  h_star, stats = solved[:2]
  samples = None
  if record:
    samples = _sample_trajectory(f, params, inputs, solved[2],
                                 stats.iterations, sample_key,
                                 config.trajectory_samples)
  jac = jnp.zeros((batch,), h0.dtype)
  if use_jac:
    h_star, jac = _jacobian_regulariser(f, params, h_star, inputs, jac_key,
                                        config)
  stats = EquilibriumStats(solver=stats,
                           jac_frobenius=jax.lax.stop_gradient(jac))
  return h_star, stats, samples


def _noisy_inputs(graph: GraphInputs, h0: jax.Array, noise_key: jax.Array,
                  config: DEQConfig, training: bool):
  """The solve's per-graph ``inputs`` and its ``inputs_at`` (or None).

  ``inputs`` is ``(graph, noise [B, N, D], noise keys [B])``: the noise is
  drawn once here (zeros without noise; the first call's noise with
  ``noise_per_call``, whose ``inputs_at`` draws every later call's from the
  graph's key).
  """
  batch = h0.shape[0]
  noise_keys = jax.random.split(noise_key, batch)
  inputs_at = None
  use_noise = config.uses_noise(training)
  if use_noise and config.noise_per_call:
    inputs_at = noise_at(config.noise_std)
    noise = jax.vmap(lambda k: inputs_at((None, h0[0], k), 0)[1])(noise_keys)
  elif use_noise:
    noise = config.noise_std * jax.random.normal(noise_key, h0.shape,
                                                 h0.dtype)
  else:
    noise = jnp.zeros_like(h0)
  return (graph, noise, noise_keys), inputs_at


def _jacobian_regulariser(f, params: Any, h_star: jax.Array, inputs,
                          jac_key: jax.Array, config: DEQConfig
                          ) -> tuple[jax.Array, jax.Array]:
  """DEAR's Jacobian regulariser at the fixed points ``h_star`` [B, N, D].

  Returns:
    ``(h_star, jac [B])``: ``h_star`` unchanged in value, carrying the
    regulariser's gradient (weight ``config.jac_reg_weight``, mean over
    graphs) in reverse mode; ``jac`` the Hutchinson estimate of
    ||J_P(H*)||_F^2 / (N * D) per graph.
  """
  batch, nodes, out_size = h_star.shape
  keys = jax.random.split(jac_key, batch)

  def per_graph(h, inputs, key):
    return gradients.jacobian_frobenius_sq(
        lambda x: f(x, params, inputs), jax.lax.stop_gradient(h), key,
        config.jac_reg_samples)

  # torchdeq's scale: ||J||_F^2 per element of the state.
  jac = jax.vmap(per_graph)(h_star, inputs, keys) / (nodes * out_size)
  # Mean over graphs, like the loss it joins.
  h_star = attach_loss_gradient(h_star, jac / batch, config.jac_reg_weight)
  return h_star, jac


def _sample_trajectory(f, params, inputs, trajectory: jax.Array,
                       iterations: jax.Array, key: jax.Array,
                       slots: int) -> TrajectorySamples:
  """Samples each graph's recorded iterates ([B, cap, N, D]) and applies
  the map once to each, with gradients (see :class:`TrajectorySamples`)."""
  batch, cap = trajectory.shape[:2]
  idx, valid = jax.vmap(
      lambda k, its: alignment.sample_indices(k, its, slots, cap))(
          jax.random.split(key, batch), iterations)
  picked = jnp.take_along_axis(trajectory, idx[:, :, None, None], axis=1)

  def per_graph(states, inputs):
    return jax.vmap(lambda h: f(jax.lax.stop_gradient(h), params, inputs))(
        states)

  return TrajectorySamples(states=jax.vmap(per_graph)(picked, inputs),
                           valid=valid)


class EquilibriumModule(nn.Module):
  """Flax wrapper of :func:`equilibrium` that owns the cell's parameters.

  The cell's whole parameter tree is one entry ``'cell'`` of this module, so
  the layer can hand it to the solver explicitly (jaxopt's implicit
  differentiation reaches only explicit arguments).

  Attributes:
    cell_config: which cell to build.
    out_size: node-state size D.
    config: the equilibrium settings.
    training: training or evaluation mode; a mode that uses noise or the
      regulariser needs a ``'noise'`` rng.
  """
  cell_config: cells_lib.CellConfig
  out_size: int
  config: DEQConfig
  training: bool = True

  def make_cell(self) -> nn.Module:
    return self.cell_config.build(self.out_size)

  @nn.compact
  def __call__(self, node_fts: jax.Array, edge_fts: jax.Array,
               graph_fts: jax.Array, adj_mat: jax.Array
               ) -> tuple[jax.Array, EquilibriumStats,
                          TrajectorySamples | None]:
    """Returns ``(H* [B, N, D], stats, samples)`` for the encoded inputs
    (see :func:`equilibrium_and_samples`)."""
    cell = self.make_cell()
    h0 = jnp.zeros(node_fts.shape[:2] + (self.out_size,), node_fts.dtype)
    params = self.param(
        'cell',
        lambda key: cell.init(key, node_fts, edge_fts, graph_fts, adj_mat,
                              h0).get('params', {}))
    needs_rng = (self.config.uses_noise(self.training)
                 or self.config.uses_jac_reg(self.training)
                 or (self.training and self.config.trajectory_samples > 0))
    rng = self.make_rng('noise') if needs_rng else None
    graph = GraphInputs(node_fts, edge_fts, graph_fts, adj_mat)
    return equilibrium_and_samples(cell, params, graph, config=self.config,
                                   training=self.training, rng=rng)


def rollout(cell: nn.Module, params: Any, graph: GraphInputs,
            steps: int) -> jax.Array:
  """The states of ``steps`` plain applications of a cell from H(0) = 0.

  This is how a step-by-step (NAR) processor without hints moves: its
  encoded inputs are the same at every step, so its state after step ``t``
  is ``P^t(0)``.

  Args:
    cell: an unbound Flax cell with attribute ``out_size`` D.
    params: the cell's ``'params'`` collection.
    graph: encoded inputs of B graphs of N nodes.
    steps: static number of steps T (at least 1).

  Returns:
    [B, T, N, D]: entry ``t`` is the state after step ``t + 1``.
  """
  if steps < 1:
    raise ValueError(f'rollout needs steps >= 1, got {steps}')
  h0 = jnp.zeros(graph.node_fts.shape[:2] + (cell.out_size,),
                 graph.node_fts.dtype)

  def step(h, _):
    h = cell.apply({'params': params}, *graph, h)
    return h, h

  _, states = jax.lax.scan(step, h0, None, length=steps)
  return jnp.moveaxis(states, 0, 1)


class RolloutModule(nn.Module):
  """Flax wrapper of :func:`rollout` with :class:`EquilibriumModule`'s
  parameter layout (one entry ``'cell'``), so that a trained processor's
  cell parameters can be used by either.

  Attributes:
    cell_config: which cell to build.
    out_size: node-state size D.
    steps: number of steps T.
  """
  cell_config: cells_lib.CellConfig
  out_size: int
  steps: int

  @nn.compact
  def __call__(self, node_fts: jax.Array, edge_fts: jax.Array,
               graph_fts: jax.Array, adj_mat: jax.Array) -> jax.Array:
    """Returns the states [B, T, N, D] after steps 1 .. T."""
    cell = self.cell_config.build(self.out_size)
    h0 = jnp.zeros(node_fts.shape[:2] + (self.out_size,), node_fts.dtype)
    params = self.param(
        'cell',
        lambda key: cell.init(key, node_fts, edge_fts, graph_fts, adj_mat,
                              h0).get('params', {}))
    graph = GraphInputs(node_fts, edge_fts, graph_fts, adj_mat)
    return rollout(cell, params, graph, self.steps)
