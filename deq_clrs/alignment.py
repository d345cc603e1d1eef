"""Alignment of an equilibrium solver's trajectory to a step-by-step one.

DEAR's alignment regulariser (Georgiev et al., NeurIPS 2024): the states a
DEQ's solver passes through on the way to its fixed point are matched, in
order, to the latent states of a frozen, trained NAR run for the true number
of steps, and the cost of the cheapest such matching is added to the loss.
Pure JAX: nothing here knows about graphs beyond "a state is [N, D]".

What is computed, per graph (the reference's rule, read from the authors'
code, with its boundary cases made exact):

* The DEQ side: ``S`` states sampled (sorted, without replacement) from the
  solver's iterates before the last one, and the layer's output.
  :func:`sample_count` gives ``S`` from the number of iterations ``K``:
  ``max(1, (K - 2) // 10)``, at most ``K - 1`` and at most a static cap.
* The NAR side: its states after steps ``1 .. L`` (``L`` = true length - 1,
  at least 1); the last is the one CLRS decodes.
* The distance of two states: the L2 norm over features, averaged over
  nodes (:func:`state_distances`).
* :func:`monotone_cost`: the cheapest matching of the ``S`` sampled states,
  in order, to NAR states ``1 .. L``: strictly increasing when ``S <= L``
  (no NAR state used twice), non-decreasing otherwise; a NAR state may be
  skipped.
* :func:`alignment_loss`: ``mean over graphs of (matching cost / S +
  distance(output, NAR state L))`` (the first term is 0 when ``S = 0``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# A cost larger than any real one (float32-safe) for impossible matchings.
_INF = 1e30
# The reference samples one DEQ state per ten solver iterations.
ITERATIONS_PER_SAMPLE = 10


def max_samples(max_iter: int) -> int:
  """The static number of sample slots for a solver cap of ``max_iter``."""
  return max(1, (max_iter - 2) // ITERATIONS_PER_SAMPLE)


def sample_count(iterations: jax.Array, cap: int) -> jax.Array:
  """How many intermediate states a graph solved in ``iterations`` steps
  gives: ``min(cap, K - 1, max(1, (K - 2) // 10))``, int32 like ``K``."""
  k = iterations.astype(jnp.int32)
  wanted = jnp.maximum(1, (k - 2) // ITERATIONS_PER_SAMPLE)
  return jnp.clip(wanted, 0, jnp.minimum(cap, k - 1)).astype(jnp.int32)


def sample_indices(key: jax.Array, iterations: jax.Array, slots: int,
                   cap: int) -> tuple[jax.Array, jax.Array]:
  """Which iterates of ONE graph to align.

  Args:
    key: PRNG key.
    iterations: scalar K, the graph's solver iterations (iterates
      ``0 .. K - 1``; ``K - 1`` is the solver's answer).
    slots: static number of slots (:func:`max_samples`).
    cap: static length of the recorded trajectory (the iteration cap).

  Returns:
    ``(indices [slots] int32, valid [slots] bool)``: the first
    :func:`sample_count` entries are distinct iterate indices in
    ``0 .. K - 2``, increasing, and valid; the rest are 0 and not valid.
  """
  count = sample_count(iterations, slots)
  positions = jnp.arange(cap)
  scores = jax.random.uniform(key, (cap,))
  scores = jnp.where(positions < iterations - 1, scores, 2.0)
  chosen = jnp.argsort(scores)[:slots]
  valid = jnp.arange(slots) < count
  # Sort the chosen ones; invalid slots go last.
  chosen = jnp.sort(jnp.where(valid, chosen, cap))
  return jnp.where(valid, chosen, 0).astype(jnp.int32), valid


def state_distances(a: jax.Array, b: jax.Array) -> jax.Array:
  """``d[i, j]`` = mean over nodes of ``||a[i, n] - b[j, n]||_2``.

  Args:
    a: [S, N, D]; b: [T, N, D].

  Returns:
    [S, T].
  """
  diff = a[:, None] - b[None, :]
  # sqrt has an infinite derivative at 0: keep the argument positive.
  norms = jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1) + 1e-12)
  return jnp.mean(norms, axis=-1)


def monotone_cost(dist: jax.Array, rows: jax.Array, cols: jax.Array
                  ) -> jax.Array:
  """The cheapest in-order matching of rows ``0 .. rows-1`` to columns
  ``0 .. cols-1`` of a cost matrix.

  Each row is matched to one column; the columns of successive rows
  increase strictly when ``rows <= cols`` and never decrease otherwise;
  columns may be skipped. Entries outside ``rows`` x ``cols`` are ignored.

  Args:
    dist: [S, T] costs.
    rows: scalar number of rows to match (0 gives 0).
    cols: scalar number of columns available (at least 1).

  Returns:
    The total cost of the cheapest matching (differentiable in ``dist``
    along the chosen matching).
  """
  s, t = dist.shape
  col = jnp.arange(t)
  in_cols = col < cols
  dist = jnp.where(in_cols[None], dist, _INF)

  def table(strict: bool) -> jax.Array:
    # prev[j]: cheapest matching of the rows so far with the last row at a
    # column <= j; before the first row, 0.
    prev = jnp.zeros((t,), dist.dtype)
    rows_out = []
    for i in range(s):
      if strict:
        # Row i needs column j > the previous row's column.
        before = (jnp.zeros((t,), dist.dtype) if i == 0 else
                  jnp.concatenate([jnp.full((1,), _INF, dist.dtype),
                                   prev[:-1]]))
      else:
        before = prev
      prev = jax.lax.cummin(jnp.minimum(dist[i] + before, _INF))
      rows_out.append(prev)
    return jnp.stack(rows_out)

  last_row = jnp.clip(rows - 1, 0, s - 1)
  last_col = jnp.clip(cols - 1, 0, t - 1)
  strict = table(True)[last_row, last_col]
  loose = table(False)[last_row, last_col]
  cost = jnp.where(rows <= cols, strict, loose)
  return jnp.where(rows > 0, cost, 0.0)


def alignment_loss(samples: jax.Array, valid: jax.Array, final: jax.Array,
                   teacher: jax.Array, teacher_steps: jax.Array) -> jax.Array:
  """DEAR's alignment regulariser of a batch (before its weight).

  Args:
    samples: [B, S, N, D] sampled solver states (with their gradients).
    valid: [B, S] which samples are real (a prefix of each row).
    final: [B, N, D] the equilibrium layer's output.
    teacher: [B, T, N, D] the NAR's states after steps 1 .. T (frozen).
    teacher_steps: [B] int, L: how many of them are the graph's own (the
      true length - 1; clipped to 1 .. T).

  Returns:
    Scalar: mean over graphs of ``monotone_cost / S + ||final - NAR state
    L||`` (node-averaged L2 norms).
  """
  teacher = jax.lax.stop_gradient(teacher)
  steps = jnp.clip(teacher_steps.astype(jnp.int32), 1, teacher.shape[1])
  rows = jnp.sum(valid, axis=1).astype(jnp.int32)

  def one(sample, rows, last, steps, teacher):
    dist = state_distances(sample, teacher)
    path = monotone_cost(dist, rows, steps) / jnp.maximum(rows, 1)
    target = jnp.take(teacher, steps - 1, axis=0)
    end = state_distances(last[None], target[None])[0, 0]
    return path + end

  return jnp.mean(jax.vmap(one)(samples, rows, final, steps, teacher))
