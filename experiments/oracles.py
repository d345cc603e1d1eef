r"""Runs the exact oracle cells on CLRS sampler graphs with every solver.

For each algorithm, graph size and forward solver it samples graphs with
CLRS's own sampler, solves the oracle through the equilibrium layer
(:mod:`deq_clrs.oracles`), decodes ``pi`` and prints one table row:

* ``score``: ``clrs.evaluate`` against CLRS's outputs (for the ``pi``
  pointer output this is pointer accuracy, i.e. micro-F1 over nodes);
* ``exact``: graphs whose decoded ``pi`` equals CLRS's on every node;
* ``h_err``: largest relative error of the fixed point against the exact one
  read off CLRS's hints;
* ``conv``: graphs whose solver met the (exact) tolerance within the cap;
* ``iters`` / ``L+1``: mean and max evaluations of the cell per graph, and the
  mean and max of CLRS's ``lengths`` + 1 (plain iteration needs exactly
  ``L + 1``); ``it-(L+1)``: the range of the per-graph difference;
* ``res``: the solver's largest final absolute residual;
* ``fb_iters``: mean and max evaluations of the plain-iteration fallback for
  the graphs the solver left unconverged (``--fallback``).

``conv``, ``iters`` and ``res`` describe the named solver alone; ``score``,
``exact`` and ``h_err`` describe the final answer, after the fallback if one
ran (``--nofallback`` scores the solver's own last iterate).

Example:

  python -m experiments.oracles --algorithms=bfs,bellman_ford \
      --sizes=16,64,256 --solvers=fixed_point,anderson --num_graphs=8
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
from absl import app
from absl import flags
from absl import logging

from deq_clrs import oracles

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

_ALGORITHMS = flags.DEFINE_list(
    'algorithms', list(oracles.ALGORITHMS), 'Oracle algorithms to run.')
_SIZES = flags.DEFINE_list('sizes', ['16', '64', '256'], 'Graph sizes N.')
_SOLVERS = flags.DEFINE_list(
    'solvers', ['fixed_point', 'anderson'], 'Forward solvers.')
_NUM_GRAPHS = flags.DEFINE_integer('num_graphs', 8, 'Graphs per size.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampler seed.')
_P = flags.DEFINE_list(
    'p', [], 'Erdos-Renyi probabilities for the CLRS sampler (empty: CLRS '
    'default 0.5). CLRS samples undirected graphs as A * A^T, so an edge '
    'exists with probability p^2.')
_SPARSE = flags.DEFINE_boolean(
    'sparse', False, 'Sample sparse graphs instead: p = sqrt(2 / N) per size '
    '(mean degree ~2: long shortest paths and unreachable nodes). Overrides '
    '--p.')
_DTYPE = flags.DEFINE_enum('dtype', 'float64', ['float64', 'float32'],
                           'Dtype of the oracle solve.')
_LOG_RANGE = flags.DEFINE_float(
    'log_range', oracles.DEFAULT_LOG_RANGE,
    'R: the smallest value of a reachable node is exp(-R).')
_MAX_ITER = flags.DEFINE_integer(
    'max_iter', 0, 'Iteration cap per graph; 0 means N + 1.')
_HISTORY = flags.DEFINE_integer('history_size', 6, 'Anderson memory.')
_RIDGE = flags.DEFINE_float('ridge', 1e-4, 'Anderson ridge.')
_FALLBACK = flags.DEFINE_boolean(
    'fallback', True, 'Finish unconverged graphs with plain iteration.')


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


def relative_error(h: np.ndarray, ref: oracles.ReferenceFixedPoint,
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
    log_range: R of :func:`deq_clrs.oracles.oracle_inputs`.
    max_iter: iteration cap (None: N + 1).
    fallback: finish unconverged graphs with plain iteration.
    **solver_kwargs: more :class:`~deq_clrs.solvers.SolverConfig` fields.

  Returns:
    ``(row, run)``.
  """
  import clrs
  graph = oracles.oracle_inputs(algorithm, feedback.features.inputs,
                                log_range=log_range, dtype=dtype)
  nodes = graph.node_fts.shape[1]
  config = oracles.oracle_solver_config(
      solver, nodes, dtype=dtype, log_range=log_range, max_iter=max_iter,
      **solver_kwargs)
  run = oracles.run_oracle(algorithm, graph, config, fallback=fallback)
  score = clrs.evaluate(feedback.outputs,
                        {'pi': oracles.pi_datapoint(run.pi)})['score']
  truth = np.asarray(feedback.outputs[0].data)
  ref = oracles.reference_fixed_point(algorithm, feedback, graph)
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


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  dtype = np.float64 if _DTYPE.value == 'float64' else np.float32
  p = [float(x) for x in _P.value]
  rows = []
  for algorithm in _ALGORITHMS.value:
    for nodes in (int(n) for n in _SIZES.value):
      p_nodes = [sparse_p(nodes)] if _SPARSE.value else p
      feedback = sample(algorithm, nodes, _NUM_GRAPHS.value, _SEED.value,
                        p_nodes)
      for solver in _SOLVERS.value:
        kwargs = {}
        if solver == 'anderson':
          kwargs = dict(history_size=_HISTORY.value, ridge=_RIDGE.value)
        row, _ = evaluate(
            algorithm, feedback, solver, dtype=dtype,
            log_range=_LOG_RANGE.value, max_iter=_MAX_ITER.value or None,
            fallback=_FALLBACK.value, **kwargs)
        rows.append(row)
        logging.info('%s N=%d %s: score %.4f, %d/%d converged', algorithm,
                     nodes, solver, row.score, row.converged, row.graphs)
  print()
  p_text = 'sqrt(2/N)' if _SPARSE.value else (p or 'CLRS default')
  print(f'dtype={_DTYPE.value} log_range={_LOG_RANGE.value} p={p_text} '
        f'seed={_SEED.value} graphs/size={_NUM_GRAPHS.value}')
  print(format_rows(rows))


if __name__ == '__main__':
  app.run(main)
