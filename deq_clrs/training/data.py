"""Data protocol: cached CLRS datasets and a resumable training stream.

Every dataset is made by an offline CLRS sampler (``num_samples > 0``) with a
seed fixed by ``(data_seed, split, size)``, with should-be permutations
processed as in CLRS's ``run.py``, pickled once into a data
directory and reloaded by every later run, so every model and every rerun is
trained and scored on the same graphs:

* ``train``: one pool per training size (DEAR: 8..16 nodes);
* ``val``: validation graphs (DEAR: 16 nodes);
* ``test``: test graphs (DEAR: 64 nodes, optionally 128/256).

A training batch is a deterministic function of ``(seed, step)``: the size
and the pool indices are drawn from a NumPy generator seeded with both, so a
run resumed from a checkpoint sees exactly the batches it would have seen.

Models that neither encode nor decode hints (``dear``, ``nar``) only need the
number of steps from the hints: :func:`steps_only` keeps the smallest hint
(with its full time axis) and drops the rest, which keeps cached files small
(full Floyd-Warshall hints at 64 nodes take ~200 MB for 32 graphs).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
from collections.abc import Sequence

import clrs
import numpy as np

SPLIT_IDS = {'train': 1, 'val': 2, 'test': 3}


def valid_algorithms() -> list[str]:
  """Names of the CLRS-30 algorithms, sorted."""
  return sorted(clrs.CLRS_30_ALGS_SETTINGS)


def algorithm_spec(algorithm: str) -> clrs.Spec:
  """The spec models are built with: CLRS's, with should-be permutations
  turned into permutation pointers plus a mask (as CLRS's ``run.py`` does
  with ``enforce_permutations``; sorting algorithms need it)."""
  spec, _ = clrs.process_permutations(clrs.SPECS[algorithm], iter(()), True)
  return spec


def enforce_permutations(feedback: clrs.Feedback) -> clrs.Feedback:
  """Applies CLRS's permutation processing to one ``Feedback``."""
  _, processed = clrs.process_permutations({}, iter([feedback]), True)
  feedback = next(processed)

  def numpy(traj):  # CLRS's conversion returns jax arrays.
    return tuple(clrs.DataPoint(dp.name, dp.location, dp.type_,
                                np.asarray(dp.data)) for dp in traj)
  f = feedback.features
  return clrs.Feedback(
      features=clrs.Features(inputs=numpy(f.inputs), hints=numpy(f.hints),
                             lengths=np.asarray(f.lengths)),
      outputs=numpy(feedback.outputs))


def sample_batches(algorithm: str, size: int, batch_size: int, count: int,
                   seed: int) -> list[clrs.Feedback]:
  """``count`` consecutive batches of one on-the-fly CLRS sampler.

  Permutations are enforced as for every model here (see
  :func:`algorithm_spec`). Consecutive batches may have different numbers
  of hint steps: CLRS pads to the longest trajectory it has seen so far.
  """
  sampler, _ = clrs.build_sampler(algorithm, num_samples=-1, length=size,
                                  seed=seed)
  return [enforce_permutations(sampler.next(batch_size))
          for _ in range(count)]


def dataset_seed(data_seed: int, split: str, size: int) -> int:
  """The sampler seed of one dataset: a hash of (data_seed, split, size)."""
  seq = np.random.SeedSequence([data_seed, SPLIT_IDS[split], size])
  return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


def steps_only(feedback: clrs.Feedback) -> clrs.Feedback:
  """Keeps only the smallest hint, whose time axis still gives the steps.

  CLRS's ``Net`` reads the number of processor steps from
  ``hints[0].data.shape[0]`` and uses hint values only when it encodes or
  decodes hints; for a model that does neither, the result is unchanged.
  """
  hints = feedback.features.hints
  smallest = min(hints, key=lambda dp: dp.data[0].size)
  features = clrs.Features(inputs=feedback.features.inputs,
                           hints=(smallest,),
                           lengths=feedback.features.lengths)
  return clrs.Feedback(features=features, outputs=feedback.outputs)


def num_graphs(feedback: clrs.Feedback) -> int:
  return int(np.asarray(feedback.features.lengths).shape[0])


def subsample(feedback: clrs.Feedback, idx: np.ndarray) -> clrs.Feedback:
  """Graphs ``idx`` of a dataset (inputs/outputs batch axis 0, hints 1)."""
  def take(traj, axis):
    return [clrs.DataPoint(dp.name, dp.location, dp.type_,
                           np.take(dp.data, idx, axis=axis)) for dp in traj]
  f = feedback.features
  features = clrs.Features(inputs=take(f.inputs, 0), hints=take(f.hints, 1),
                           lengths=np.asarray(f.lengths)[idx])
  return clrs.Feedback(features=features, outputs=take(feedback.outputs, 0))


def _atomic_pickle(obj, path: str) -> None:
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:
      pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def load_dataset(algorithm: str, split: str, size: int, num_samples: int, *,
                 data_dir: str, data_seed: int = 0,
                 with_hints: bool = False) -> clrs.Feedback:
  """Loads one dataset from ``data_dir``, generating and caching it once.

  Args:
    algorithm: a CLRS-30 name.
    split: ``'train'``, ``'val'`` or ``'test'`` (only changes the seed).
    size: nodes per graph (CLRS's ``length``).
    num_samples: graphs in the dataset.
    data_dir: cache directory.
    data_seed: base seed of every dataset.
    with_hints: keep every hint (for models that use hints); otherwise
      :func:`steps_only`.

  Returns:
    A ``Feedback`` holding all ``num_samples`` graphs (hints [T, B, ...]).
  """
  seed = dataset_seed(data_seed, split, size)
  name = (f'{algorithm}_{split}_n{size}_k{num_samples}_s{seed}_'
          f'{"hints" if with_hints else "steps"}_perm.pkl')
  path = os.path.join(data_dir, name)
  if os.path.exists(path):
    with open(path, 'rb') as f:
      return pickle.load(f)
  sampler, _ = clrs.build_sampler(algorithm, num_samples=num_samples,
                                  length=size, seed=seed)
  feedback = enforce_permutations(sampler.next())
  if not with_hints:
    feedback = steps_only(feedback)
  _atomic_pickle(feedback, path)
  return feedback


@dataclasses.dataclass
class TrainStream:
  """Training batches as a deterministic function of ``(seed, step)``.

  Attributes:
    pools: size -> cached training pool of that size.
    batch_size: graphs per batch.
    seed: run seed.
  """
  pools: dict[int, clrs.Feedback]
  batch_size: int
  seed: int

  @classmethod
  def load(cls, algorithm: str, sizes: Sequence[int], samples_per_size: int,
           batch_size: int, seed: int, *, data_dir: str, data_seed: int = 0,
           with_hints: bool = False) -> TrainStream:
    pools = {int(n): load_dataset(algorithm, 'train', int(n),
                                  samples_per_size, data_dir=data_dir,
                                  data_seed=data_seed, with_hints=with_hints)
             for n in sizes}
    return cls(pools=pools, batch_size=batch_size, seed=seed)

  @property
  def sizes(self) -> list[int]:
    return sorted(self.pools)

  def batch(self, step: int) -> clrs.Feedback:
    """The batch of training step ``step`` (graph size drawn uniformly)."""
    rng = np.random.default_rng([self.seed, step])
    size = self.sizes[rng.integers(len(self.sizes))]
    pool = self.pools[size]
    idx = rng.integers(0, num_graphs(pool), self.batch_size)
    return subsample(pool, idx)


def batches(feedback: clrs.Feedback, batch_size: int
            ) -> list[clrs.Feedback]:
  """Splits a dataset into consecutive batches (the last may be smaller)."""
  total = num_graphs(feedback)
  return [subsample(feedback, np.arange(i, min(i + batch_size, total)))
          for i in range(0, total, batch_size)]


def mean_steps(feedback: clrs.Feedback) -> float:
  """Mean true number of algorithm steps (CLRS ``lengths``) per graph."""
  return float(np.mean(np.asarray(feedback.features.lengths)))
