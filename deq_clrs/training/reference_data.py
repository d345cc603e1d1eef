"""The authors' DEAR validation and test graphs, regenerated with CLRS.

To compare a model trained here with the authors' implementation on the
same graphs, :func:`generate` redraws their evaluation sets from the facts
of their recipe (read from their dataset code, not copied):

* one on-the-fly CLRS sampler per set (``num_samples=-1``, so CLRS first
  draws 1,000 graphs to estimate the longest trajectory), seeded
  ``47 + 3 * size + 1`` for validation and ``+ 2`` for test;
* Erdos-Renyi edge probability drawn per graph from 0.1, ..., 0.9;
* graphs drawn one at a time; the first tenth of the set's count is drawn
  and discarded (their code reads it to size the hint padding);
* the ``pos`` input randomised by CLRS's ``process_random_pos`` with a
  ``RandomState`` of the same seed, in every split;
* should-be permutations processed as everywhere in this project.

Only algorithms whose reference sampler and spec are CLRS's own, and whose
inputs the reference does not turn into ``pred_as_input`` form, are
accepted (:data:`ALGORITHMS`). A test checks the first graphs against an
export of the reference's own test set.
"""

from __future__ import annotations

import os

import clrs
import numpy as np

from deq_clrs.training import data as data_lib
from deq_clrs.training import preflight
from deq_clrs.training.errors import UserError

# The reference's dataset seed and its per-split offsets.
BASE_SEED = 47
SPLIT_OFFSETS = {'val': 1, 'test': 2}
EDGE_PROBABILITIES = tuple(round(0.1 + 0.1 * i, 1) for i in range(9))

# Algorithms of the paper whose reference sampler and spec are CLRS's and
# whose inputs keep their CLRS form (binary_search and
# strongly_connected_components have the authors' own samplers; minimum and
# binary_search take predecessors as inputs there).
ALGORITHMS = preflight.REFERENCE_EVAL_ALGORITHMS


def seed(split: str, size: int) -> int:
  """The reference's sampler seed of the ``split`` set of ``size`` nodes."""
  if split not in SPLIT_OFFSETS:
    raise UserError(f'the reference recipe makes validation and test sets, '
                    f'not {split!r}')
  return BASE_SEED + 3 * int(size) + SPLIT_OFFSETS[split]


def check_algorithm(algorithm: str) -> None:
  """Refuses algorithms whose reference graphs this module cannot redraw."""
  if algorithm not in ALGORITHMS:
    raise UserError(
        f'eval_sets=reference: no reference recipe for {algorithm!r} (the '
        f'authors use their own sampler or pred_as_input form for it); '
        f'available for: {", ".join(ALGORITHMS)}')


def generate(algorithm: str, split: str, size: int, num_samples: int, *,
             with_hints: bool = False) -> clrs.Feedback:
  """The reference's ``split`` set: ``num_samples`` graphs of ``size`` nodes.

  Args:
    algorithm: one of :data:`ALGORITHMS`.
    split: ``'val'`` or ``'test'``.
    size: nodes per graph.
    num_samples: graphs in the set (the reference: 100).
    with_hints: keep every hint; otherwise :func:`data.steps_only`.

  Returns:
    A ``Feedback`` of ``num_samples`` graphs (inputs [G, N, ...], hints
    [T, G, ...] padded to the longest, lengths [G]).
  """
  check_algorithm(algorithm)
  sampler_seed = seed(split, size)
  kwargs = {}
  if data_lib.takes_edge_probability(algorithm):
    kwargs['p'] = EDGE_PROBABILITIES
  sampler, _ = clrs.build_sampler(algorithm, num_samples=-1, length=size,
                                  seed=sampler_seed, **kwargs)

  def one_at_a_time():
    while True:
      yield sampler.next(1)
  graphs = clrs.process_random_pos(one_at_a_time(),
                                   np.random.RandomState(sampler_seed))
  for _ in range(num_samples // 10):
    next(graphs)
  parts = []
  for _ in range(num_samples):
    part = data_lib.enforce_permutations(next(graphs))
    parts.append(part if with_hints else data_lib.steps_only(part))
  return data_lib.concatenate(parts)


def cache_path(algorithm: str, split: str, size: int, num_samples: int, *,
               data_dir: str, with_hints: bool = False) -> str:
  """The cache file of :func:`load_dataset`'s set in ``data_dir``."""
  name = (f'{algorithm}_{split}_n{size}_k{num_samples}_reference_'
          f's{seed(split, size)}_{"hints" if with_hints else "steps"}.pkl')
  return os.path.join(data_dir, name)


def load_dataset(algorithm: str, split: str, size: int, num_samples: int, *,
                 data_dir: str, with_hints: bool = False) -> clrs.Feedback:
  """:func:`generate`'s set, cached in ``data_dir`` like every dataset."""
  check_algorithm(algorithm)
  path = cache_path(algorithm, split, size, num_samples, data_dir=data_dir,
                    with_hints=with_hints)
  return data_lib.load_or_make(path, num_samples, lambda: generate(
      algorithm, split, size, num_samples, with_hints=with_hints))
