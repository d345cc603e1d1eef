r"""Runs the exact oracle cells on CLRS sampler graphs with every solver.

For each algorithm, graph size and forward solver it samples graphs with
CLRS's own sampler, solves the oracle through the equilibrium layer
(:mod:`deq_clrs.oracles`, whose cells these are), decodes ``pi`` and prints
one table row (the scoring is :mod:`experiments.oracle_scoring`):

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

  python -m experiments.oracle_runs --algorithms=bfs,bellman_ford \
      --sizes=16,64,256 --solvers=fixed_point,anderson --num_graphs=8
"""

from __future__ import annotations

# isort: split
from experiments import quiet  # noqa: F401  (first: before TensorFlow)

# isort: split
import os
from typing import Sequence

import numpy as np
from absl import app
from absl import flags
from absl import logging

from deq_clrs import oracles
from deq_clrs import solvers
from experiments import cli
from experiments import oracle_scoring

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

_ALGORITHMS = flags.DEFINE_list(
    'algorithms', list(oracles.ALGORITHMS), 'Oracle algorithms to run.')
_SIZES = cli.define_number_list('sizes', [16, 64, 256], 'Graph sizes N.')
_SOLVERS = flags.DEFINE_list(
    'solvers', ['fixed_point', 'anderson'], 'Forward solvers.')
_NUM_GRAPHS = flags.DEFINE_integer('num_graphs', 8, 'Graphs per size.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampler seed.')
_P = cli.define_number_list(
    'p', [], 'Erdos-Renyi probabilities for the CLRS sampler (empty: CLRS '
    'default 0.5). CLRS samples undirected graphs as A * A^T, so an edge '
    'exists with probability p^2.', kind=float)
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
# Anderson's settings, defaulted by the library's solver config.
_ANDERSON = cli.define_dataclass_flags(solvers.SolverConfig, {
    'history_size': 'Anderson memory.', 'ridge': 'Anderson ridge.'})
_FALLBACK = flags.DEFINE_boolean(
    'fallback', True, 'Finish unconverged graphs with plain iteration.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  dtype = np.float64 if _DTYPE.value == 'float64' else np.float32
  p = _P.value
  rows = []
  for algorithm in _ALGORITHMS.value:
    for nodes in _SIZES.value:
      p_nodes = [oracle_scoring.sparse_p(nodes)] if _SPARSE.value else p
      feedback = oracle_scoring.sample(algorithm, nodes, _NUM_GRAPHS.value,
                                      _SEED.value, p_nodes)
      for solver in _SOLVERS.value:
        kwargs = {}
        if solver == 'anderson':
          kwargs = cli.dataclass_values(_ANDERSON)
        row, _ = oracle_scoring.evaluate(
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
  print(oracle_scoring.format_rows(rows))


if __name__ == '__main__':
  app.run(main)
