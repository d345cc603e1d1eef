"""Batched fixed-point solves with a choice of gradient; Hutchinson's estimator.

Pure JAX and jaxopt. :func:`solve` maps the per-example forward solve of
:mod:`deq_clrs.solvers` over a batch (leading axis B of ``h0`` and of every
leaf of ``inputs``; ``params`` are shared), so that every example stops on
its own tolerance and reports its own statistics, and lets gradients reach
``params`` (and ``inputs``) in one of three ways.

Backward modes (:class:`~deq_clrs.solvers.BackwardConfig`):

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

:func:`jacobian_frobenius_sq` is the Hutchinson estimate of
``||df/dh||_F^2`` behind DEAR's Jacobian regulariser.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jaxopt.implicit_diff import custom_fixed_point

from deq_clrs import anderson
from deq_clrs import solvers
from deq_clrs.anderson import FixedPointFn
from deq_clrs.anderson import PyTree
from deq_clrs.solvers import InputsAt


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
    return solvers.forward_solve(f, h0, params, inputs, config, max_iter,
                                 inputs_at)

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
  ``measure.gradient_agreement.gradient_agreement``).
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
  stopped = (_stop(h0), _stop(params), _stop(inputs))
  if record:
    h_star, stats, trajectory = solvers.forward_trajectory(
        f, *stopped, config, max_iter, inputs_at)
  else:
    h_star, stats = solvers.forward_solve(f, *stopped, config, max_iter,
                                          inputs_at)
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
  abs_res = anderson.tree_norm(jax.tree_util.tree_map(jnp.subtract, h, h_prev))
  rel_res = solvers.relative_residual(abs_res, h)
  iterations = jnp.asarray(backward.unroll_steps, jnp.int32)
  stats = solvers.SolverStats(
      iterations=iterations, abs_residual=abs_res, rel_residual=rel_res,
      converged=solvers.is_converged(abs_res, rel_res, config),
      returned=iterations)
  return h, _stop(stats)


def solve(f: FixedPointFn, h0: PyTree, params: PyTree, inputs: PyTree, *,
          config: solvers.SolverConfig = solvers.SolverConfig(),
          backward: solvers.BackwardConfig = solvers.BackwardConfig(),
          training: bool = True,
          inputs_at: InputsAt | None = None,
          record_trajectory: bool = False
          ) -> tuple[PyTree, solvers.SolverStats]:
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
      of the ``i``-th call of ``f`` (see
      :func:`~deq_clrs.solvers.forward_solve`).
    record_trajectory: also return the solver's iterates (``phantom`` mode
      only: the other modes differentiate through the solve itself).

  Returns:
    ``(h_star, stats)``: ``h_star`` shaped like ``h0``; ``stats`` a
    :class:`~deq_clrs.solvers.SolverStats` whose fields have shape [B]. With
    ``record_trajectory``, ``(h_star, stats, trajectory)``: every leaf of
    ``trajectory`` is ``[B, cap, ...]``, each example's iterates as
    :func:`~deq_clrs.solvers.forward_trajectory` gives them (no gradient
    flows into them).
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
    return jnp.square(anderson.tree_norm(vj))

  return jnp.mean(jax.vmap(one)(jax.random.split(key, num_samples)))
