"""Where equilibrium layers send their solver statistics (CLRS-free).

A processor running under ``jit`` inside someone else's training step (CLRS's
``BaselineModel``) cannot return extra outputs, so it sends its
:class:`~deq_clrs.deq.EquilibriumStats` to a :class:`SolverStatsLog` with
``jax.debug.callback``.
"""

from __future__ import annotations

import threading

import jax
import numpy as np

from deq_clrs import deq as deq_lib


class SolverStatsLog:
  """Collects the solver statistics of every equilibrium-processor call.

  The processor sends its :class:`~deq_clrs.deq.EquilibriumStats` to the log
  with ``jax.debug.callback`` (it works under ``jit`` inside CLRS's own
  functions). Read them after a ``feedback`` / ``predict`` with
  :meth:`drain`; each record holds numpy arrays of shape [B].
  """

  def __init__(self):
    self._records: list[deq_lib.EquilibriumStats] = []
    self._lock = threading.Lock()

  def record(self, stats: deq_lib.EquilibriumStats) -> None:
    """Appends one call's stats (called by the processor)."""
    stats = jax.tree_util.tree_map(np.asarray, stats)
    with self._lock:
      self._records.append(stats)

  def drain(self) -> list[deq_lib.EquilibriumStats]:
    """Waits for pending callbacks, then returns and forgets all records."""
    jax.effects_barrier()
    with self._lock:
      records, self._records = self._records, []
    return records

  @staticmethod
  def summarize(records: list[deq_lib.EquilibriumStats]) -> dict[str, float]:
    """Per-graph means and maxima over a list of records."""
    if not records:
      return {}
    cat = lambda get: np.concatenate([np.ravel(get(r)) for r in records])
    its = cat(lambda r: r.solver.iterations)
    return {
        'graphs': int(its.size),
        'iterations_mean': float(its.mean()),
        'iterations_max': int(its.max()),
        'converged_fraction': float(cat(lambda r: r.solver.converged).mean()),
        'rel_residual_mean': float(cat(lambda r: r.solver.rel_residual).mean()),
        'rel_residual_max': float(cat(lambda r: r.solver.rel_residual).max()),
    }
