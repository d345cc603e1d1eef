"""Fixed-point solvers with per-example convergence and a choice of gradient.

Pure JAX and jaxopt: nothing here knows about graphs, Flax or Haiku.

The fixed-point function has the signature ``f(h, params, inputs) -> h`` and
acts on ONE example: ``h`` is any pytree of arrays (for a graph, an array of
shape [N, H]), ``params`` are the parameters that gradients are taken with
respect to, ``inputs`` is a pytree of per-example data held fixed during the
solve. :func:`solve` maps such an ``f`` over a batch (leading axis B of ``h0``
and of every leaf of ``inputs``; ``params`` are shared), so that every example
stops on its own tolerance and reports its own statistics.

Forward solvers are jaxopt's ``FixedPointIteration`` and
``AndersonAcceleration``, driven one ``update`` at a time by our own loop:
jaxopt stops only on an absolute residual over the whole pytree, while we
stop each example on ``||f(h) - h|| <= abs_tol`` OR
``||f(h) - h|| / ||f(h)|| <= rel_tol`` and keep the first iterate that
satisfies it.

Backward modes (:class:`BackwardConfig`):

* ``implicit``: implicit differentiation through
  ``jaxopt.implicit_diff.custom_fixed_point``; the adjoint linear system is
  solved with normal CG, GMRES or BiCGStab.
* ``phantom``: the solve runs without gradients, then ``k`` damped steps
  ``h <- (1 - lam) h + lam f(h)`` are applied with gradients from the stopped
  fixed point (``k = 1, lam = 1`` is Jacobian-free backprop, DEAR's choice).
  The layer's output is the state after those steps in training; at
  evaluation it is the solver's iterate (the reference's choice) unless
  ``phantom_in_eval`` asks for the steps there too;
  ``SolverStats.iterations`` counts the solver loop only.
* ``unrolled``: plain backprop through a fixed number of iterations of ``f``
  from ``h0`` (a reference; it ignores the forward solver and tolerances).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any
from typing import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxopt
from jaxopt import linear_solve
from jaxopt.implicit_diff import custom_fixed_point

PyTree = Any
FixedPointFn = Callable[[PyTree, PyTree, PyTree], PyTree]

FORWARD_METHODS = ('anderson', 'fixed_point')
BACKWARD_MODES = ('implicit', 'phantom', 'unrolled')
LINEAR_SOLVERS = {
    'normal_cg': linear_solve.solve_normal_cg,
    'gmres': linear_solve.solve_gmres,
    'bicgstab': linear_solve.solve_bicgstab,
}


def _check_choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise ValueError(
        f'unknown {name} {value!r}; expected one of {sorted(choices)}')


@dataclasses.dataclass(frozen=True)
class SolverConfig:
  """Forward fixed-point solver settings.

  Attributes:
    method: ``'anderson'`` (jaxopt AndersonAcceleration) or ``'fixed_point'``
      (jaxopt FixedPointIteration).
    max_iter: iteration cap per example during training.
    eval_max_iter: iteration cap per example at evaluation (DEAR uses 4x the
      training cap).
    rel_tol: stop when ``||f(h) - h|| / ||f(h)|| <= rel_tol``; 0 disables.
    abs_tol: stop when ``||f(h) - h|| <= abs_tol``; 0 disables.
    history_size: Anderson memory (at least 2).
    beta: Anderson mixing parameter (1 = undamped).
    ridge: Tikhonov regularisation of Anderson's least-squares problem.
  """
  method: str = 'anderson'
  max_iter: int = 40
  eval_max_iter: int = 160
  rel_tol: float = 0.1
  abs_tol: float = 0.0
  history_size: int = 6
  beta: float = 1.0
  ridge: float = 1e-4

  def __post_init__(self):
    _check_choice('solver method', self.method, FORWARD_METHODS)
    if self.max_iter < 1 or self.eval_max_iter < 1:
      raise ValueError(
          f'iteration caps must be >= 1, got max_iter={self.max_iter}, '
          f'eval_max_iter={self.eval_max_iter}')
    if self.rel_tol < 0 or self.abs_tol < 0:
      raise ValueError(
          f'tolerances must be >= 0, got rel_tol={self.rel_tol}, '
          f'abs_tol={self.abs_tol}')
    if self.method == 'anderson' and self.history_size < 2:
      raise ValueError(
          f'Anderson needs history_size >= 2, got {self.history_size}')

  def cap(self, training: bool) -> int:
    """The iteration cap for training (``True``) or evaluation (``False``)."""
    return self.max_iter if training else self.eval_max_iter


@dataclasses.dataclass(frozen=True)
class BackwardConfig:
  """How gradients flow through the fixed point.

  Attributes:
    mode: ``'implicit'``, ``'phantom'`` or ``'unrolled'`` (see module doc).
    linear_solver: for ``implicit``: ``'normal_cg'``, ``'gmres'`` or
      ``'bicgstab'``.
    linear_tol: relative tolerance of the adjoint linear solve.
    linear_max_iter: iteration cap of the adjoint linear solve.
    phantom_steps: number ``k`` of differentiable steps for ``phantom``.
    phantom_damping: ``lam`` in ``h <- (1 - lam) h + lam f(h)``.
    phantom_in_eval: also apply the ``k`` phantom steps at evaluation
      (``training=False``), so that the model is evaluated on the map it was
      trained on. The default (False) is the reference's (torchdeq):
      evaluation returns the solver's iterate.
    unroll_steps: number of differentiable iterations for ``unrolled``.
  """
  mode: str = 'phantom'
  linear_solver: str = 'gmres'
  linear_tol: float = 1e-5
  linear_max_iter: int = 40
  phantom_steps: int = 1
  phantom_damping: float = 1.0
  phantom_in_eval: bool = False
  unroll_steps: int = 40

  def __post_init__(self):
    _check_choice('backward mode', self.mode, BACKWARD_MODES)
    _check_choice('linear solver', self.linear_solver, LINEAR_SOLVERS)
    if self.phantom_steps < 1 or self.unroll_steps < 1:
      raise ValueError('phantom_steps and unroll_steps must be >= 1')
    if not 0.0 < self.phantom_damping <= 1.0:
      raise ValueError(
          f'phantom_damping must be in (0, 1], got {self.phantom_damping}')
    if self.linear_max_iter < 1 or self.linear_tol <= 0:
      raise ValueError('linear_max_iter must be >= 1 and linear_tol > 0')

  def linear_solve_fn(self) -> Callable[..., Any]:
    """The jaxopt linear solver ``solve(matvec, b)`` for the adjoint system.

    ``linear_max_iter`` bounds the number of matrix-vector products: for
    GMRES, jax counts restarts (of ``restart`` Krylov steps each) as
    iterations, so the cap is split into restarts of at most 20 steps.
    """
    kwargs = dict(tol=self.linear_tol, maxiter=self.linear_max_iter)
    if self.linear_solver == 'gmres':
      restart = min(20, self.linear_max_iter)
      kwargs.update(restart=restart,
                    maxiter=-(-self.linear_max_iter // restart))
    return functools.partial(LINEAR_SOLVERS[self.linear_solver], **kwargs)


class SolverStats(NamedTuple):
  """Per-example solver statistics (each field has shape [B] after `solve`).

  The residuals are those of the last evaluation, ``f(x) - x`` at the last
  point ``x`` the solver evaluated (an iterate, or Anderson's extrapolation
  of its history); the solver returns ``f(x)``.

  Attributes:
    iterations: number of evaluations of ``f`` in the solve loop.
    abs_residual: ``||f(h) - h||`` at the last iterate.
    rel_residual: ``||f(h) - h|| / ||f(h)||`` at the last iterate.
    converged: whether a tolerance was met within the cap.
  """
  iterations: jax.Array
  abs_residual: jax.Array
  rel_residual: jax.Array
  converged: jax.Array


def tree_norm(tree: PyTree) -> jax.Array:
  """Euclidean norm of all the leaves of a pytree taken together."""
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


def relative_residual(abs_residual: jax.Array, f_h: PyTree) -> jax.Array:
  """``abs_residual / ||f(h)||``, equal to 0 when both are 0."""
  return abs_residual / jnp.maximum(tree_norm(f_h), 1e-30)


def _is_converged(abs_res, rel_res, config: SolverConfig) -> jax.Array:
  hit = jnp.zeros((), bool)
  if config.abs_tol > 0:
    hit = hit | (abs_res <= config.abs_tol)
  if config.rel_tol > 0:
    hit = hit | (rel_res <= config.rel_tol)
  return hit


def _jaxopt_solver(f: FixedPointFn, config: SolverConfig):
  """The jaxopt solver whose ``init_state`` and ``update`` we drive.

  Only those two methods are used: the loop, its cap and its stopping
  rule are ours (:func:`forward_solve`). jaxopt's ``maxiter``, ``tol``,
  ``jit`` and ``implicit_diff`` configure its own ``run`` loop alone, so
  they are not passed.
  """
  if config.method == 'anderson':
    return jaxopt.AndersonAcceleration(
        fixed_point_fun=f, history_size=config.history_size, beta=config.beta,
        ridge=config.ridge)
  return jaxopt.FixedPointIteration(fixed_point_fun=f)


InputsAt = Callable[[PyTree, jax.Array], PyTree]


def forward_solve(f: FixedPointFn, h0: PyTree, params: PyTree, inputs: PyTree,
                  config: SolverConfig, max_iter: int,
                  inputs_at: InputsAt | None = None
                  ) -> tuple[PyTree, SolverStats]:
  """Solves ``h = f(h, params, inputs)`` for ONE example, without gradients.

  Runs jaxopt updates until the example meets a tolerance of ``config`` or
  ``max_iter`` evaluations of ``f`` were made, and returns the first iterate
  that met it (under ``vmap`` every example keeps its own). Not
  differentiable: use :func:`solve` for gradients.

  Args:
    f: the fixed-point map of one example.
    h0: initial iterate (pytree, e.g. [N, H]).
    params: parameters of ``f``.
    inputs: per-example data of ``f``.
    config: tolerances and solver choice.
    max_iter: iteration cap.
    inputs_at: optional ``(inputs, i) -> inputs_i``: the data of the ``i``-th
      evaluation of ``f`` (``i`` an int32 scalar from 0), e.g. to draw fresh
      noise on every call. Default: ``inputs`` at every call.

  Returns:
    ``(h, stats)`` with ``h`` shaped like ``h0`` and scalar ``stats`` fields.
  """
  h, stats, _ = _solve_loop(f, h0, params, inputs, config, max_iter,
                            inputs_at, record=False)
  return h, stats


def forward_trajectory(f: FixedPointFn, h0: PyTree, params: PyTree,
                       inputs: PyTree, config: SolverConfig, max_iter: int,
                       inputs_at: InputsAt | None = None
                       ) -> tuple[PyTree, SolverStats, PyTree]:
  """:func:`forward_solve` that also returns the iterates it went through.

  Returns:
    ``(h, stats, trajectory)``: as :func:`forward_solve`, and every leaf of
    ``trajectory`` has shape ``[max_iter, *leaf.shape]``: entry ``i`` is
    the ``(i + 1)``-th iterate (the output of the ``(i + 1)``-th call of
    ``f``; entry ``stats.iterations - 1`` is ``h``), zeros after the last.
  """
  return _solve_loop(f, h0, params, inputs, config, max_iter, inputs_at,
                     record=True)


def _solve_loop(f, h0, params, inputs, config, max_iter, inputs_at, record):
  """The loop of :func:`forward_solve`; with ``record``, the iterates too
  (else ``None``)."""
  solver = _jaxopt_solver(f, config)
  at = (lambda i: inputs) if inputs_at is None else (
      lambda i: inputs_at(inputs, i))
  state = solver.init_state(h0, params, at(jnp.zeros((), jnp.int32)))
  trajectory = None
  if record:
    trajectory = jax.tree_util.tree_map(
        lambda x: jnp.zeros((max_iter,) + x.shape, x.dtype), h0)

  def cond(carry):
    _, state, done, _ = carry
    return jnp.logical_and(jnp.logical_not(done), state.iter_num < max_iter)

  def body(carry):
    h, state, _, trajectory = carry
    # Both jaxopt solvers return next = f(x) and state.error = ||f(x) - x||,
    # where x is h (fixed point) or Anderson's extrapolation of the history.
    h, state = solver.update(h, state, params, at(state.iter_num))
    if record:
      trajectory = jax.tree_util.tree_map(
          lambda buf, x: buf.at[state.iter_num - 1].set(x), trajectory, h)
    rel = relative_residual(state.error, h)
    return h, state, _is_converged(state.error, rel, config), trajectory

  h, state, done, trajectory = jax.lax.while_loop(
      cond, body, (h0, state, jnp.zeros((), bool), trajectory))
  stats = SolverStats(
      iterations=state.iter_num.astype(jnp.int32),
      abs_residual=state.error,
      rel_residual=relative_residual(state.error, h),
      converged=done)
  return h, stats, trajectory


def _stop(tree: PyTree) -> PyTree:
  return jax.tree_util.tree_map(jax.lax.stop_gradient, tree)


def _implicit_solve(f, h0, params, inputs, config, max_iter, backward,
                    inputs_at=None, training=True):
  del training
  # The adjoint system is linearised at the map with the plain ``inputs``
  # (per-call variations, e.g. noise, are a property of the forward solve).
  def fixed_point_fun(h, params, inputs):
    return f(h, params, inputs)

  @custom_fixed_point(fixed_point_fun, has_aux=True,
                      solve=backward.linear_solve_fn())
  def solver_fun(h0, params, inputs):
    return forward_solve(f, h0, params, inputs, config, max_iter, inputs_at)

  return solver_fun(h0, params, inputs)


def phantom_steps(f: FixedPointFn, h: PyTree, params: PyTree, inputs: PyTree,
                  steps: int, damping: float,
                  inputs_at: InputsAt | None = None,
                  first_call: jax.Array | int = 0) -> PyTree:
  """Applies ``steps`` damped steps ``h <- (1 - damping) h + damping f(h)``.

  With ``inputs_at``, step ``j`` evaluates ``f`` on
  ``inputs_at(inputs, first_call + j)``. More than one step runs under
  ``lax.scan``, so that compilation does not grow with ``steps`` (a
  many-step phantom gradient approaches the implicit one; see
  ``benchmarking.gradient_agreement``).
  """
  def step(h, j):
    step_inputs = (inputs if inputs_at is None
                   else inputs_at(inputs, first_call + j))
    fh = f(h, params, step_inputs)
    if damping != 1.0:
      fh = jax.tree_util.tree_map(
          lambda a, b: (1.0 - damping) * a + damping * b, h, fh)
    return fh, None

  if steps == 1:
    return step(h, 0)[0]
  h, _ = jax.lax.scan(step, h, jnp.arange(steps, dtype=jnp.int32))
  return h


def _phantom_solve(f, h0, params, inputs, config, max_iter, backward,
                   inputs_at=None, training=True, record=False):
  h_star, stats, trajectory = _solve_loop(
      f, _stop(h0), _stop(params), _stop(inputs), config, max_iter,
      inputs_at, record)
  if training or backward.phantom_in_eval:
    # The phantom steps are the next calls of f after the solver's.
    h_star = phantom_steps(f, _stop(h_star), params, inputs,
                           backward.phantom_steps, backward.phantom_damping,
                           inputs_at, first_call=stats.iterations + 1)
  if record:
    return h_star, stats, trajectory
  return h_star, stats


def _unrolled_solve(f, h0, params, inputs, config, backward, inputs_at=None):
  at = (lambda i: inputs) if inputs_at is None else (
      lambda i: inputs_at(inputs, i))

  def step(h, i):
    return f(h, params, at(i)), None

  calls = jnp.arange(backward.unroll_steps, dtype=jnp.int32)
  h_prev, _ = jax.lax.scan(step, h0, calls[:-1])
  h = f(h_prev, params, at(calls[-1]))
  abs_res = tree_norm(jax.tree_util.tree_map(jnp.subtract, h, h_prev))
  rel_res = relative_residual(abs_res, h)
  stats = SolverStats(
      iterations=jnp.asarray(backward.unroll_steps, jnp.int32),
      abs_residual=abs_res, rel_residual=rel_res,
      converged=_is_converged(abs_res, rel_res, config))
  return h, _stop(stats)


def solve(f: FixedPointFn, h0: PyTree, params: PyTree, inputs: PyTree, *,
          config: SolverConfig = SolverConfig(),
          backward: BackwardConfig = BackwardConfig(),
          training: bool = True,
          inputs_at: InputsAt | None = None,
          record_trajectory: bool = False) -> tuple[PyTree, SolverStats]:
  """Finds the fixed point of ``f`` for every example of a batch.

  Args:
    f: ``f(h, params, inputs) -> h`` for ONE example.
    h0: initial iterates with leading batch axis B (e.g. [B, N, H]).
    params: parameters shared by all examples; gradients reach them (and
      ``inputs``) according to ``backward``.
    inputs: per-example data, every leaf with leading batch axis B.
    config: forward solver settings.
    backward: gradient mode.
    training: selects the iteration cap (``config.max_iter`` or
      ``config.eval_max_iter``) and, with ``phantom_in_eval=False``, whether
      the phantom steps are applied.
    inputs_at: optional ``(inputs, i) -> inputs_i`` of ONE example: the data
      of the ``i``-th call of ``f`` (see :func:`forward_solve`).
    record_trajectory: also return the solver's iterates (``phantom`` mode
      only: the other modes differentiate through the solve itself).

  Returns:
    ``(h_star, stats)``: ``h_star`` shaped like ``h0``; ``stats`` a
    :class:`SolverStats` whose fields have shape [B]. With
    ``record_trajectory``, ``(h_star, stats, trajectory)``: every leaf of
    ``trajectory`` is ``[B, cap, ...]``, each example's iterates as
    :func:`forward_trajectory` gives them (no gradient flows into them).
  """
  max_iter = config.cap(training)
  if record_trajectory and backward.mode != 'phantom':
    raise ValueError(f'recording the solver trajectory needs the phantom '
                     f'backward mode, got {backward.mode!r}')
  if backward.mode == 'implicit':
    one = functools.partial(_implicit_solve, f, config=config,
                            max_iter=max_iter, backward=backward,
                            inputs_at=inputs_at, training=training)
  elif backward.mode == 'phantom':
    one = functools.partial(_phantom_solve, f, config=config,
                            max_iter=max_iter, backward=backward,
                            inputs_at=inputs_at, training=training,
                            record=record_trajectory)
  else:
    one = functools.partial(_unrolled_solve, f, config=config,
                            backward=backward, inputs_at=inputs_at)
  return jax.vmap(one, in_axes=(0, None, 0))(h0, params, inputs)


def jacobian_frobenius_sq(fun: Callable[[PyTree], PyTree], x: PyTree,
                          key: jax.Array, num_samples: int = 1) -> jax.Array:
  """Hutchinson estimate of ``||d fun / d x||_F^2`` at ``x``.

  Uses ``E_v ||v^T J||^2 = ||J||_F^2`` for ``v ~ N(0, I)``, with
  ``num_samples`` vector-Jacobian products. Differentiable in whatever
  ``fun`` closes over (e.g. parameters), so it can be added to a loss.

  Args:
    fun: a function of ``x`` returning a pytree.
    x: the point (e.g. a fixed point [N, H]).
    key: PRNG key for the probe vectors.
    num_samples: number of probe vectors.

  Returns:
    A scalar estimate.
  """
  y, vjp = jax.vjp(fun, x)
  leaves, treedef = jax.tree_util.tree_flatten(y)

  def one(k):
    keys = jax.random.split(k, len(leaves))
    v = treedef.unflatten(
        [jax.random.normal(kk, leaf.shape, leaf.dtype)
         for kk, leaf in zip(keys, leaves)])
    (vj,) = vjp(v)
    return jnp.square(tree_norm(vj))

  return jnp.mean(jax.vmap(one)(jax.random.split(key, num_samples)))
