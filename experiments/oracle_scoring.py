"""Scoring the oracle cells: sample CLRS graphs, run an oracle with a
solver, score it, format the rows.

The flag-free library behind ``python -m experiments.oracle_runs``
(importable by tests without registering absl flags). See that module for
the columns.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from deq_clrs import oracles
from deq_clrs.integration import oracle_data


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the report: an algorithm, a size and a solver."""
  algorithm: str
  nodes: int
  solver: str
  graphs: int
  score: float
  exact: int
  h_err: float
  converged: int
  iters_mean: float
  iters_max: int
  steps_mean: float
  steps_max: int
  excess_min: int
  excess_max: int
  residual: float
  fallback_mean: float | None
  fallback_max: int | None


def sparse_p(nodes: int) -> float:
  """Sampler probability giving undirected CLRS graphs of mean degree ~2."""
  return float(np.sqrt(2.0 / nodes))


def sample(algorithm: str, nodes: int, num_graphs: int, seed: int,
           p: Sequence[float] = ()):
  """CLRS feedback of ``num_graphs`` graphs of ``nodes`` nodes."""
  import clrs  # Slow (tensorflow); imported when first needed.
  kwargs = {'p': tuple(p)} if p else {}
  sampler, _ = clrs.build_sampler(
      algorithm, num_samples=-1, length=nodes, seed=seed,
      track_max_steps=False, **kwargs)
  return sampler.next(num_graphs)


def relative_error(h: np.ndarray, ref: oracle_data.ReferenceFixedPoint,
                   graph) -> float:
  """Largest ``|h - h_ref| / max(h_ref, floor)`` over all nodes [B, N]."""
  floor = np.asarray(graph.graph_fts[:, 1], np.float64)[:, None]
  err = np.abs(np.asarray(h, np.float64) - ref.h) / np.maximum(ref.h, floor)
  return float(err.max())


def evaluate(algorithm: str, feedback, solver: str, *,
             dtype=np.float64, log_range: float = oracles.DEFAULT_LOG_RANGE,
             max_iter: int | None = None, fallback: bool = True,
             **solver_kwargs) -> tuple[Row, oracles.OracleRun]:
  """Runs one solver on the graphs of ``feedback`` and scores it.

  Args:
    algorithm: ``'bfs'`` or ``'bellman_ford'``.
    feedback: CLRS ``Feedback`` from :func:`sample`.
    solver: ``'fixed_point'`` or ``'anderson'``.
    dtype: dtype of the solve.
    log_range: R of :func:`deq_clrs.integration.oracle_data.oracle_inputs`.
    max_iter: iteration cap (None: N + 1).
    fallback: finish unconverged graphs with plain iteration.
    **solver_kwargs: more :class:`~deq_clrs.solvers.SolverConfig` fields.

  Returns:
    ``(row, run)``.
  """
  import clrs
  graph = oracle_data.oracle_inputs(algorithm, feedback.features.inputs,
                                log_range=log_range, dtype=dtype)
  nodes = graph.node_fts.shape[1]
  config = oracles.oracle_solver_config(
      solver, nodes, dtype=dtype, log_range=log_range, max_iter=max_iter,
      **solver_kwargs)
  run = oracles.run_oracle(algorithm, graph, config, fallback=fallback)
  score = clrs.evaluate(feedback.outputs,
                        {'pi': oracle_data.pi_datapoint(run.pi)})['score']
  truth = np.asarray(feedback.outputs[0].data)
  ref = oracle_data.reference_fixed_point(algorithm, feedback, graph)
  steps = np.asarray(feedback.features.lengths).astype(int) + 1
  iters = np.asarray(run.stats.iterations)
  fb = run.fallback_stats
  unconverged = ~np.asarray(run.stats.converged)
  fb_iters = np.asarray(fb.iterations)[unconverged] if fb is not None else None
  row = Row(
      algorithm=algorithm, nodes=nodes, solver=solver, graphs=len(iters),
      score=float(score), exact=int(np.all(run.pi == truth, axis=1).sum()),
      h_err=relative_error(run.h_star, ref, graph),
      converged=int(np.sum(run.stats.converged)),
      iters_mean=float(iters.mean()), iters_max=int(iters.max()),
      steps_mean=float(steps.mean()), steps_max=int(steps.max()),
      excess_min=int((iters - steps).min()),
      excess_max=int((iters - steps).max()),
      residual=float(np.max(run.stats.abs_residual)),
      fallback_mean=(float(fb_iters.mean()) if fb_iters is not None
                     and fb_iters.size else None),
      fallback_max=(int(fb_iters.max()) if fb_iters is not None
                    and fb_iters.size else None))
  return row, run


_HEADER = ('algorithm', 'N', 'solver', 'score', 'exact', 'h_err', 'conv',
           'iters', 'L+1', 'it-(L+1)', 'res', 'fb_iters')


def format_rows(rows: Sequence[Row]) -> str:
  """A fixed-width text table of ``rows``."""
  lines = []
  for r in rows:
    fb = ('-' if r.fallback_mean is None
          else f'{r.fallback_mean:.1f}/{r.fallback_max}')
    lines.append((
        r.algorithm, str(r.nodes), r.solver, f'{r.score:.4f}',
        f'{r.exact}/{r.graphs}', f'{r.h_err:.1e}',
        f'{r.converged}/{r.graphs}', f'{r.iters_mean:.1f}/{r.iters_max}',
        f'{r.steps_mean:.1f}/{r.steps_max}',
        f'{r.excess_min}..{r.excess_max}', f'{r.residual:.1e}', fb))
  widths = [max(len(h), *(len(line[i]) for line in lines))
            for i, h in enumerate(_HEADER)]
  fmt = '  '.join(f'{{:<{w}}}' for w in widths)
  out = [fmt.format(*_HEADER), fmt.format(*('-' * w for w in widths))]
  out += [fmt.format(*line) for line in lines]
  return '\n'.join(out)
