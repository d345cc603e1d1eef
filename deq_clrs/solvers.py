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
``AndersonAcceleration``, and :class:`GrowingAnderson` (torchdeq's Anderson
schedule, written here because jaxopt has no such mode), driven one
``update`` at a time by our own loop: jaxopt stops only on an absolute
residual over the whole pytree, while we stop each example on
``||f(h) - h|| <= abs_tol`` OR ``||f(h) - h|| / ||f(h)|| <= rel_tol`` and
keep the first iterate that satisfies it. With ``return_best``, an example
that never meets a tolerance returns its lowest-residual iterate instead of
its last (still reported as not converged).

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

FORWARD_METHODS = ('anderson', 'anderson_growing', 'fixed_point')
ANDERSON_METHODS = ('anderson', 'anderson_growing')
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
    method: ``'anderson'`` (jaxopt AndersonAcceleration: ``history_size``
      plain steps, then mixing over all ``history_size`` slots),
      ``'anderson_growing'`` (:class:`GrowingAnderson`, torchdeq's schedule:
      two plain steps, then mixing over a history that grows to
      ``history_size``; tolerances are checked from the third evaluation
      on) or ``'fixed_point'`` (jaxopt FixedPointIteration).
    max_iter: iteration cap per example during training.
    eval_max_iter: iteration cap per example at evaluation (DEAR uses 4x the
      training cap).
    rel_tol: stop when ``||f(h) - h|| / ||f(h)|| <= rel_tol``; 0 disables.
    abs_tol: stop when ``||f(h) - h|| <= abs_tol``; 0 disables.
    history_size: Anderson memory (at least 2).
    beta: Anderson mixing parameter (1 = undamped).
    ridge: Tikhonov regularisation of Anderson's least-squares problem.
    return_best: an example that meets no tolerance within the cap returns
      its iterate of lowest relative residual (absolute when ``rel_tol`` is
      0) among those whose tolerance was checked, as torchdeq does, instead
      of its last; it stays reported as not converged.
  """
  method: str = 'anderson'
  max_iter: int = 40
  eval_max_iter: int = 160
  rel_tol: float = 0.1
  abs_tol: float = 0.0
  history_size: int = 6
  beta: float = 1.0
  ridge: float = 1e-4
  return_best: bool = False

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
    if self.method in ANDERSON_METHODS and self.history_size < 2:
      raise ValueError(
          f'Anderson needs history_size >= 2, got {self.history_size}')

  def cap(self, training: bool) -> int:
    """The iteration cap for training (``True``) or evaluation (``False``)."""
    return self.max_iter if training else self.eval_max_iter

  def first_checked(self) -> int:
    """The first evaluation (from 1) whose output is tested against the
    tolerances: 3 for ``anderson_growing`` (torchdeq never tests its two
    plain steps), else 1."""
    return GrowingAnderson.PLAIN_STEPS + 1 if (
        self.method == 'anderson_growing') else 1


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

  The residuals are those of the returned evaluation, ``f(x) - x`` at the
  point ``x`` the solver evaluated (an iterate, or Anderson's extrapolation
  of its history); the solver returns ``f(x)``. That evaluation is the last
  one, except with ``return_best`` for an example that did not converge.

  Attributes:
    iterations: number of evaluations of ``f`` in the solve loop.
    abs_residual: ``||f(x) - x||`` at the returned evaluation.
    rel_residual: ``||f(x) - x|| / ||f(x)||`` at the returned evaluation.
    converged: whether a tolerance was met within the cap.
    returned: which evaluation (from 1) the returned iterate came from:
      ``iterations``, except with ``return_best`` for an example that did
      not converge (its lowest-residual evaluation).
  """
  iterations: jax.Array
  abs_residual: jax.Array
  rel_residual: jax.Array
  converged: jax.Array
  returned: jax.Array


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


class GrowingAndersonState(NamedTuple):
  """State of :class:`GrowingAnderson` for ONE example.

  Attributes:
    iter_num: evaluations of ``f`` made so far (int32 scalar).
    error: ``||f(x) - x||`` of the last evaluation (inf before the first).
    points: the last ``m`` evaluated points ``x``, every leaf
      ``[m, *leaf.shape]``; slot ``i % m`` holds evaluation ``i`` (from 0).
    residuals: ``f(x) - x`` at those points, shaped like ``points``.
    gram: ``[m, m]`` Gram matrix of ``residuals`` (unwritten slots 0).
  """
  iter_num: jax.Array
  error: jax.Array
  points: PyTree
  residuals: PyTree
  gram: jax.Array


@dataclasses.dataclass(frozen=True)
class GrowingAnderson:
  """Anderson acceleration on torchdeq's schedule (its ``anderson_solver``).

  Evaluations 1 and 2 are plain steps (``x_0 = h0``, ``x_1 = f(x_0)``);
  evaluation ``k + 1`` (``k >= 2``) evaluates ``f`` at the mixture of the
  last ``n = min(k, m)`` points,
  ``x_k = sum_i a_i x_i + beta sum_i a_i (f(x_i) - x_i)``, where ``a``
  minimises ``||sum_i a_i (f(x_i) - x_i)||^2 + ridge ||a||^2`` subject to
  ``sum_i a_i = 1``. jaxopt's ``AndersonAcceleration`` instead makes ``m``
  plain steps and then always mixes over ``m`` slots, and has no growing
  history; this is a small masked version of its least-squares step
  (slots not yet written get weight 0), with the same ``init_state`` /
  ``update`` interface so that :func:`forward_solve` drives either.

  Attributes:
    fixed_point_fun: ``f(h, params, inputs)`` of ONE example.
    history_size: ``m``, at least 2.
    beta: mixing (1: the mixture of the ``f(x_i)``).
    ridge: absolute Tikhonov term added to the Gram matrix (torchdeq's
      ``lam``).
  """
  fixed_point_fun: FixedPointFn
  history_size: int = 6
  beta: float = 1.0
  ridge: float = 1e-4

  PLAIN_STEPS = 2  # torchdeq: X[0] = x0, X[1] = f(x0), then mixing.

  def init_state(self, h0: PyTree, *args: Any) -> GrowingAndersonState:
    """The state before the first evaluation (``args`` are unused; they are
    there for jaxopt's signature)."""
    del args
    m = self.history_size
    points = jax.tree_util.tree_map(
        lambda x: jnp.zeros((m,) + x.shape, x.dtype), h0)
    dtype = jax.tree_util.tree_leaves(h0)[0].dtype
    return GrowingAndersonState(
        iter_num=jnp.zeros((), jnp.int32),
        error=jnp.asarray(jnp.inf, dtype),
        points=points,
        residuals=jax.tree_util.tree_map(jnp.zeros_like, points),
        gram=jnp.zeros((m, m), dtype))

  def _mixture(self, state: GrowingAndersonState) -> PyTree:
    """The extrapolation over the first ``min(iter_num, m)`` slots."""
    m = self.history_size
    valid = jnp.arange(m) < jnp.minimum(state.iter_num, m)
    both = valid[:, None] & valid[None, :]
    gram = jnp.where(both, state.gram, 0.0)
    # An unwritten slot's row reads (ridge + 1) a_i = 0, so a_i = 0.
    gram = gram + jnp.diag(self.ridge + (~valid).astype(gram.dtype))
    border = valid.astype(gram.dtype)
    system = jnp.block([[jnp.zeros((1, 1), gram.dtype), border[None, :]],
                        [border[:, None], gram]])
    rhs = jnp.zeros((m + 1,), gram.dtype).at[0].set(1.0)
    weights = jnp.linalg.solve(system, rhs)[1:]

    def combine(points, residuals):
      mix = lambda t: jnp.tensordot(weights.astype(t.dtype), t, axes=1)
      return mix(points) + self.beta * mix(residuals)

    return jax.tree_util.tree_map(combine, state.points, state.residuals)

  def update(self, h: PyTree, state: GrowingAndersonState, params: PyTree,
             inputs: PyTree) -> tuple[PyTree, GrowingAndersonState]:
    """One evaluation: ``(f(x), state)`` with ``x = h`` during the plain
    steps, else the mixture of the history."""
    k = state.iter_num
    x = jax.lax.cond(k >= self.PLAIN_STEPS, lambda: self._mixture(state),
                     lambda: h)
    fx = self.fixed_point_fun(x, params, inputs)
    residual = jax.tree_util.tree_map(jnp.subtract, fx, x)
    pos = k % self.history_size
    put = lambda hist, new: hist.at[pos].set(new)
    points = jax.tree_util.tree_map(put, state.points, x)
    residuals = jax.tree_util.tree_map(put, state.residuals, residual)
    row = sum(jnp.tensordot(r, new, axes=new.ndim) for r, new in zip(
        jax.tree_util.tree_leaves(residuals),
        jax.tree_util.tree_leaves(residual)))
    gram = state.gram.at[pos, :].set(row).at[:, pos].set(row)
    return fx, GrowingAndersonState(
        iter_num=k + 1, error=tree_norm(residual), points=points,
        residuals=residuals, gram=gram)


def _jaxopt_solver(f: FixedPointFn, config: SolverConfig):
  """The solver whose ``init_state`` and ``update`` we drive.

  Only those two methods are used: the loop, its cap and its stopping
  rule are ours (:func:`forward_solve`). jaxopt's ``maxiter``, ``tol``,
  ``jit`` and ``implicit_diff`` configure its own ``run`` loop alone, so
  they are not passed.
  """
  if config.method == 'anderson_growing':
    return GrowingAnderson(
        fixed_point_fun=f, history_size=config.history_size, beta=config.beta,
        ridge=config.ridge)
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

  Runs solver updates until the example meets a tolerance of ``config`` or
  ``max_iter`` evaluations of ``f`` were made, and returns the first iterate
  that met it (under ``vmap`` every example keeps its own); one that never
  does returns its last iterate, or with ``config.return_best`` its
  lowest-residual one. Not differentiable: use :func:`solve` for gradients.

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
    ``f``; entry ``stats.returned - 1`` is ``h``), zeros after the last.
  """
  return _solve_loop(f, h0, params, inputs, config, max_iter, inputs_at,
                     record=True)


class _Best(NamedTuple):
  """The lowest-residual evaluation so far (``return_best``)."""
  h: PyTree
  abs_residual: jax.Array
  rel_residual: jax.Array
  evaluation: jax.Array  # From 1; 0 while none was checked.


def _best_init(h0: PyTree) -> _Best:
  dtype = jax.tree_util.tree_leaves(h0)[0].dtype
  inf = jnp.asarray(jnp.inf, dtype)
  return _Best(h0, inf, inf, jnp.zeros((), jnp.int32))


def _best_update(best: _Best, h, abs_res, rel_res, evaluation, checked,
                 config: SolverConfig) -> _Best:
  """Keeps the evaluation of lowest relative residual (absolute with
  ``rel_tol = 0``); the earlier one on a tie, as torchdeq."""
  if config.rel_tol > 0:
    lower = rel_res < best.rel_residual
  else:
    lower = abs_res < best.abs_residual
  take = checked & lower
  pick = lambda new, old: jnp.where(take, new, old)
  return _Best(jax.tree_util.tree_map(pick, h, best.h), pick(abs_res,
               best.abs_residual), pick(rel_res, best.rel_residual),
               pick(evaluation, best.evaluation))


def _solve_loop(f, h0, params, inputs, config, max_iter, inputs_at, record):
  """The loop of :func:`forward_solve`; with ``record``, the iterates too
  (else ``None``)."""
  solver = _jaxopt_solver(f, config)
  first_checked = config.first_checked()
  at = (lambda i: inputs) if inputs_at is None else (
      lambda i: inputs_at(inputs, i))
  state = solver.init_state(h0, params, at(jnp.zeros((), jnp.int32)))
  trajectory = None
  if record:
    trajectory = jax.tree_util.tree_map(
        lambda x: jnp.zeros((max_iter,) + x.shape, x.dtype), h0)
  best = _best_init(h0) if config.return_best else None

  def cond(carry):
    _, state, done, _, _ = carry
    return jnp.logical_and(jnp.logical_not(done), state.iter_num < max_iter)

  def body(carry):
    h, state, _, trajectory, best = carry
    # Every solver returns next = f(x) and state.error = ||f(x) - x||, where
    # x is h (a plain step) or Anderson's extrapolation of the history.
    h, state = solver.update(h, state, params, at(state.iter_num))
    if record:
      trajectory = jax.tree_util.tree_map(
          lambda buf, x: buf.at[state.iter_num - 1].set(x), trajectory, h)
    rel = relative_residual(state.error, h)
    checked = state.iter_num >= first_checked
    if best is not None:
      best = _best_update(best, h, state.error, rel, state.iter_num,
                          checked, config)
    done = checked & _is_converged(state.error, rel, config)
    return h, state, done, trajectory, best

  h, state, done, trajectory, best = jax.lax.while_loop(
      cond, body, (h0, state, jnp.zeros((), bool), trajectory, best))
  iterations = state.iter_num.astype(jnp.int32)
  abs_res, rel_res = state.error, relative_residual(state.error, h)
  returned = iterations
  if best is not None:
    # Not converged, and some evaluation was checked: the best one.
    use = jnp.logical_not(done) & (best.evaluation > 0)
    pick = lambda b, last: jnp.where(use, b, last)
    h = jax.tree_util.tree_map(pick, best.h, h)
    abs_res, rel_res = pick(best.abs_residual, abs_res), pick(
        best.rel_residual, rel_res)
    returned = pick(best.evaluation, iterations)
  stats = SolverStats(iterations=iterations, abs_residual=abs_res,
                      rel_residual=rel_res, converged=done,
                      returned=returned)
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
  ``measure.gradients.gradient_agreement``).
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
  iterations = jnp.asarray(backward.unroll_steps, jnp.int32)
  stats = SolverStats(
      iterations=iterations, abs_residual=abs_res, rel_residual=rel_res,
      converged=_is_converged(abs_res, rel_res, config), returned=iterations)
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
