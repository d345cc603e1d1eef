"""CLRS graphs in and out of the exact oracles of :mod:`deq_clrs.oracles`.

:func:`oracle_inputs` builds an oracle's inputs from CLRS's input data points
(``s``, ``A``), :func:`pi_datapoint` wraps decoded pointers as CLRS's ``pi``
output, and :func:`reference_fixed_point` reads the exact fixed point off
CLRS's hints, to check the solvers against.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import clrs
import numpy as np

from deq_clrs import deq as deq_lib
from deq_clrs import oracles


def _input(inputs: Sequence, name: str) -> np.ndarray:
  for dp in inputs:
    if dp.name == name:
      return np.asarray(dp.data)
  raise KeyError(f'CLRS inputs have no {name!r}; got '
                 f'{[dp.name for dp in inputs]}')


def oracle_inputs(algorithm: str, inputs: Sequence, *,
                  log_range: float = oracles.DEFAULT_LOG_RANGE,
                  dtype=np.float64) -> deq_lib.GraphInputs:
  """Builds an oracle's raw inputs from CLRS input data points.

  Args:
    algorithm: ``'bfs'`` or ``'bellman_ford'``.
    inputs: the ``DataPoint``s of ``feedback.features.inputs`` (uses ``s``
      [B, N] and ``A`` [B, N, N]).
    log_range: R; the smallest value of a reachable node is ``exp(-R)``.
    dtype: numpy float dtype of the result.

  Returns:
    numpy :class:`~deq_clrs.deq.GraphInputs`: ``node_fts`` [B, N, 1] source
    indicator, ``edge_fts`` [B, N, N, 1] weights ``A`` (zeros for BFS),
    ``graph_fts`` [B, 2] = (map constant, half of ``exp(-R)``), ``adj_mat``
    [B, N, N] with 1 where CLRS sees an edge (``A > 0`` for BFS, ``A != 0``
    for Bellman-Ford, as in its code; self-loops included).
  """
  oracles.check_algorithm(algorithm)
  if log_range <= 0:
    raise ValueError(f'log_range must be > 0, got {log_range}')
  source = _input(inputs, 's').astype(dtype)
  weights = _input(inputs, 'A').astype(dtype)
  batch, nodes = source.shape
  floor = np.full((batch,), 0.5 * np.exp(-log_range), dtype)
  if algorithm == 'bfs':
    adj = (weights > 0).astype(dtype)
    edge_fts = np.zeros_like(weights)[..., None]
    constant = np.full((batch,), np.exp(-log_range / max(nodes - 1, 1)),
                       dtype)
  else:
    if np.any(weights < 0):
      raise ValueError('the Bellman-Ford oracle needs non-negative weights')
    adj = (weights != 0).astype(dtype)
    edge_fts = weights[..., None]
    # Bound on any shortest-path length: N - 1 edges of the largest weight.
    bound = (nodes - 1) * weights.reshape(batch, -1).max(axis=1)
    bound = np.where(bound > 0, bound, 1.0)
    constant = (log_range / bound).astype(dtype)
  graph_fts = np.stack([constant, floor], axis=-1).astype(dtype)
  return deq_lib.GraphInputs(
      node_fts=source[..., None], edge_fts=edge_fts, graph_fts=graph_fts,
      adj_mat=adj)


def pi_datapoint(pi: np.ndarray):
  """Wraps decoded pointers [B, N] as a CLRS ``pi`` output data point."""
  return clrs.DataPoint(name='pi', location=clrs.Location.NODE,
                        type_=clrs.Type.POINTER, data=np.asarray(pi))


@dataclasses.dataclass(frozen=True)
class ReferenceFixedPoint:
  """The exact fixed point computed from CLRS's own hints (for checking).

  Attributes:
    dist: [B, N] BFS hop counts or Bellman-Ford distances; ``inf`` where a
      node is unreachable.
    h: [B, N] the oracle value ``g ** dist`` / ``exp(-dist / t)`` (0 where
      unreachable).
  """
  dist: np.ndarray
  h: np.ndarray


def reference_fixed_point(algorithm: str, feedback,
                          graph: deq_lib.GraphInputs) -> ReferenceFixedPoint:
  """Reads the exact fixed point off a CLRS feedback's hints.

  BFS: ``dist(v)`` is the first time step whose ``reach_h`` hint holds v.
  Bellman-Ford: ``dist`` is the ``d`` hint at the last step (``lengths - 1``),
  with ``msk`` telling reachable nodes.

  Args:
    algorithm: ``'bfs'`` or ``'bellman_ford'``.
    feedback: a CLRS ``Feedback`` (hints not truncated).
    graph: the oracle inputs built from it (for g and t).

  Returns:
    A :class:`ReferenceFixedPoint` (float64).
  """
  oracles.check_algorithm(algorithm)
  hints = {dp.name: np.asarray(dp.data) for dp in feedback.features.hints}
  lengths = np.asarray(feedback.features.lengths).astype(int)
  constant = np.asarray(graph.graph_fts[:, oracles.CONSTANT],
                        np.float64)[:, None]
  batch = lengths.shape[0]
  if algorithm == 'bfs':
    reach = hints['reach_h'] > 0.5      # [T, B, N]
    steps = np.arange(reach.shape[0])[:, None, None]
    valid = steps < lengths[None, :, None]
    first = np.where(reach & valid, steps, np.inf).min(axis=0)
    dist = first
    h = np.where(np.isfinite(dist), constant ** np.where(
        np.isfinite(dist), dist, 0), 0.0)
  else:
    last = hints['d'][lengths - 1, np.arange(batch)]      # [B, N]
    mask = hints['msk'][lengths - 1, np.arange(batch)] > 0.5
    dist = np.where(mask, last, np.inf)
    h = np.where(mask, np.exp(-np.where(mask, last, 0) * constant), 0.0)
  return ReferenceFixedPoint(dist=dist, h=h)
