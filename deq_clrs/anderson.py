"""Anderson acceleration on torchdeq's schedule, for ONE example.

Pure JAX: :class:`GrowingAnderson` has the ``init_state`` / ``update``
interface of jaxopt's fixed-point solvers, so that
:func:`deq_clrs.solvers.forward_solve` drives it like jaxopt's
``FixedPointIteration`` and ``AndersonAcceleration``. jaxopt has no
Anderson mode whose history grows, which torchdeq's (the DEAR authors')
has; this module writes it.

It is the bottom of the solver stack (``anderson`` <- ``solvers`` <-
``gradients``), so it also holds :func:`tree_norm`, the Euclidean norm of a
pytree in which every solver here measures its residuals.

The fixed-point function has the signature ``f(h, params, inputs) -> h``
and acts on ONE example: ``h`` is any pytree of arrays (for a graph, an
array of shape [N, H]).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any
FixedPointFn = Callable[[PyTree, PyTree, PyTree], PyTree]


def tree_norm(tree: PyTree) -> jax.Array:
  """Euclidean norm of all the leaves of a pytree taken together."""
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


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
  ``update`` interface so that
  :func:`deq_clrs.solvers.forward_solve` drives either.

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
